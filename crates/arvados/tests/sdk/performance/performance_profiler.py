# cibox's own support module for the Arvados Python SDK test suite: the
# `profiled` decorator the SDK's benchmark tests import (the sdist lacks it).
"""`profiled`: run a function under cProfile and write its statistics to a file.

The report goes to $CIBOX_SDK_PROFILE_DIR/<function name> (default: a
`cibox-sdk-profile` directory under the system temporary directory).  The
function's result is returned and its exceptions propagate unchanged; the
report is written either way.
"""

import cProfile
import functools
import os
import pstats
import tempfile


def _output_dir():
    path = os.environ.get('CIBOX_SDK_PROFILE_DIR') or os.path.join(
        tempfile.gettempdir(), 'cibox-sdk-profile')
    os.makedirs(path, exist_ok=True)
    return path


def profiled(function):
    @functools.wraps(function)
    def run_profiled(*args, **kwargs):
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            return function(*args, **kwargs)
        finally:
            profiler.disable()
            report = os.path.join(_output_dir(), function.__name__)
            with open(report, 'w') as out:
                pstats.Stats(profiler, stream=out).sort_stats('cumulative').print_stats()
    return run_profiled
