"""Work on a file's bytes that needs no database and no store: pure functions and plug-ins.

Everything here takes a stream (an iterable of ``bytes`` chunks, such as
``store.open(identifiers).chunks()``) and returns data: a verdict, metadata,
rendered bytes. Nothing here imports the models, the services or the stores,
opens a transaction or writes a record; the services decide when a step runs
and record what it returned.

- :mod:`~django_attachments.processing.scanners`: malware scanners (``clamd``).
"""
