"""Load tests for a poolserve deployment: locust scenarios over a seeded corpus of real images, SLO checks,
step load, and a report with plots. ``python -m poolserve.loadtests run --help`` (also ``poolserve
loadtest``).

Two processes on purpose: the command (``cli``) is ordinary Python; the load generator (``engine``) runs in
a child process because locust monkey-patches the standard library with gevent the moment it is imported.
"""
