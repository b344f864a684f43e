"""django-attachments-framework 0.1.0 on local disk, for ``benchmarks/suite/peers.py`` (its own virtualenv).

Its storage is a ``FileSystemStorage``, so it takes the path it has for any
storage but S3: ``POST upload-start/`` (JSON) answers a ticket to ``PUT`` the
raw bytes to its own ``<uuid>/upload/`` view (which also takes a multipart
``POST``), then ``POST <uuid>/upload-complete/`` marks it complete and links
it to its owners (``relations``). Its views are plain Django views that
read ``request.user``: the client logs in with a session (and sends the CSRF
token it asks for).
"""
