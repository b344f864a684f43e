"""The benchmark suite behind ``benchmarks/run.py`` (which keeps the command line and ``main``).

- ``config``: sizes, paths, the AWS environment kept away from real credentials;
- ``measure``: a process's CPU time and peak RSS growth (``PeakMeter``; ``FlowMeter`` over several requests);
- ``payloads``: the pool of random bytes and the payloads cut from it;
- ``client``: the HTTP client (streamed bodies, exact ``Content-Length``);
- ``processes``: moto, the project's server (gunicorn or runserver), the database;
- ``report``: formatting, tables, machine facts, Markdown;
- ``context``: the run's shared state and sanity checks, API uploads, warm-up;
- ``s3``: boto3 against moto from the benchmark process;
- one module per benchmark: ``uploads`` (disk and S3), ``dedup``, ``download``,
  ``listing``, ``purge``, ``direct``, ``analysis``, ``scanning``;
- for the last two: ``pipeline`` (their stores, blobs, child processes),
  ``processing_child`` (one case in a process of its own), ``samples`` (inputs).

``run.py`` puts ``benchmarks/`` and the repository root on ``sys.path`` before
importing the package (``measure`` and ``processes`` use ``tests.servers``).
"""
