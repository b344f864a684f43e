"""A minimal Django project used only by ``benchmarks/run.py``.

Its settings are driven by the environment that run.py sets (``BENCH_*``);
it is not an example of how to configure the app.
"""
