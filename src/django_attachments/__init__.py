"""django_attachments: let any model of a Django project own files.

See :mod:`django_attachments.registry` to register owner types and
:mod:`django_attachments.services` to attach, link and unlink files.
"""

__version__ = "0.1.0"
