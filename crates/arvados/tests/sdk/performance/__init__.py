# cibox's own support package for the Arvados Python SDK test suite (see
# performance_profiler.py).
