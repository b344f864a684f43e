"""Work on a file's bytes that needs no database and no store: pure functions and plug-ins.

Everything here takes the file's bytes and returns data: a verdict,
metadata, rendered bytes. Scanners read a stream of chunks (such as
``store.open(identifiers).chunks()``); analyzers read a seekable binary file
holding the whole file (the pipeline spools a store's stream to a temporary
file first), each reading only the parts its format needs. Nothing here
imports the models, the services or the stores, opens a transaction or writes
a record; the services decide when a step runs and record what it returned.

- :mod:`~django_attachments.processing.scanners`: malware scanners (``clamd``).
- :mod:`~django_attachments.processing.analyzers`: metadata of images (Pillow)
  and PDFs (pypdf), from the ``analyze`` extra; of audio and video (FFmpeg's
  ``ffprobe``, a system program); of DICOM images (pydicom, the ``dicom`` extra).
"""
