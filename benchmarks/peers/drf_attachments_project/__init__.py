"""drf-attachments 0.4.2 set up as its README says, for ``benchmarks/suite/peers.py`` (its own virtualenv).

Uploads: ``POST /api/attachment/`` (multipart: ``file``, ``name``, ``context``,
``content_object`` as the owner's URL), DRF's ``AttachmentViewSet`` as shipped
(``MultiPartParser``, ``IsAuthenticated``), authenticated by a token.
"""
