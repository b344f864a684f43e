"""Signals sent by :mod:`django_attachments.services`.

Each is sent after the database change it reports (inside the caller's
transaction, if there is one)::

    from django.dispatch import receiver
    from django_attachments.signals import attachment_created

    @receiver(attachment_created)
    def notify(sender, attachment, user, **kwargs):
        ...
"""

from django.dispatch import Signal

#: Sent when a new blob row is saved; its bytes are already in the storage.
#: Arguments: ``sender`` (the Blob class), ``blob``.
blob_created = Signal()

#: Sent when a blob is linked to an owner by a new attachment (not when an
#: identical link already existed).
#: Arguments: ``sender`` (the Attachment class), ``attachment``, ``user`` (or None),
#: ``new_blob`` (True when the blob was stored by this same upload, False when
#: an existing blob was linked: a dedup hit, a link by id, known bytes).
attachment_created = Signal()

#: Sent for every attachment removed by ``unlink`` or ``unlink_all_for_owner``.
#: The row is gone; ``attachment.blob`` may now be an orphan.
#: Arguments: ``sender`` (the Attachment class), ``attachment``.
attachment_deleted = Signal()

#: Sent when every part of a multipart direct upload is held and the ticket
#: turns ``verifying``, after that commits: the task that joins and reads the
#: object back listens (and a command sends it again for a lost task).
#: Arguments: ``sender`` (the DirectUpload class), ``upload``.
upload_parts_received = Signal()

#: Sent for every blob the purge removes, after its row is deleted and its
#: bytes' deletion was tried.
#: Arguments: ``sender`` (the Blob class), ``blob`` (no longer in the database),
#: ``bytes_deleted`` (False when the storage refused: the object is now stray).
blob_purged = Signal()

#: Sent once when the malware scanner finds a threat in a blob, after the
#: verdict is committed. The blob is quarantined: never served, linked or
#: deduplicated against; its attachments stay, for the project to act on
#: (tell someone, unlink, purge).
#: Arguments: ``sender`` (the Blob class), ``blob``, ``signature`` (what was found).
blob_infected = Signal()

#: Sent when a read of a blob's (or a variant's) bytes fell back to a copy in
#: another storage (a mirror, or the storage it was moved from), because its
#: own storage failed or lacks the object.
#: Arguments: ``sender`` (the Blob or Variant class), ``row`` (the blob or
#: variant), ``storage`` (the alias read instead), ``error`` (what the primary
#: raised).
read_fell_back = Signal()

#: Sent after ``migrate_attachments`` switched a blob (or a variant) to another
#: storage, once the switch committed.
#: Arguments: ``sender`` (the Blob or Variant class), ``row`` (with its new
#: storage), ``source`` (the alias it left), ``copied`` (False when a copy
#: held there already was taken over).
row_moved = Signal()
