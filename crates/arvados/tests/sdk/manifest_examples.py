# cibox's own support module for the Arvados Python SDK test suite: the
# `manifest_examples` helper the SDK's test files import (the sdist lacks it).
"""Synthetic collection manifests for the SDK's benchmark tests."""

from . import arvados_testutil as tutil


class ManifestExamples(object):
    """Mixin with make_manifest(), a manifest of made-up streams and files.

    Every block holds `bytes_per_block` bytes of b'x', so all blocks share
    one locator; each file is `blocks_per_file` whole blocks, so files begin
    and end on block boundaries.  Streams are ./stream0 ... and files
    file0.txt ...  No Keep server is involved: the text is built directly.
    """

    def make_manifest(self,
                      bytes_per_block=1,
                      blocks_per_file=1,
                      files_per_stream=1,
                      streams=1):
        locator = tutil.str_keep_locator(b'x' * bytes_per_block)
        file_size = bytes_per_block * blocks_per_file
        if file_size > 0:
            block_count = blocks_per_file * files_per_stream
        else:
            # Nothing to store: a stream still needs one (empty) block.
            block_count = 1
        lines = []
        for stream_index in range(streams):
            tokens = ['./stream{}'.format(stream_index)]
            tokens.extend([locator] * block_count)
            for file_index in range(files_per_stream):
                tokens.append('{}:{}:file{}.txt'.format(
                    file_index * file_size, file_size, file_index))
            lines.append(' '.join(tokens) + '\n')
        return ''.join(lines)
