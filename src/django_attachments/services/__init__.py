"""The verbs of django_attachments: the only code that opens transactions and calls stores.

::

    from django_attachments import services

    attachment = services.attach(
        request.FILES["file"], owner_type="plan_item", owner_id=str(item.pk),
        name="before", tenant=clinic_id, user=request.user,
    )
    services.link(attachment.blob, owner_type="patient", owner_id=str(patient.pk), tenant=clinic_id)
    services.unlink(attachment)
    services.unlink_all_for_owner("plan_item", str(item.pk))   # from the consumer's delete path

    services.purge_orphans()                  # blobs nothing links to, past the grace period
    services.purge_strays()                   # objects no blob references, past the grace period
    services.purge_uploads()                  # direct uploads never completed, past their expiry
    services.purge_incomplete_uploads()       # multipart uploads no ticket knows (they cost money on S3)
    services.find_dangling(delete=True)       # links whose owner no longer resolves
    services.verify_blobs()                   # every blob's bytes still there, still the same

    # Direct uploads: the client sends the bytes to the storage, the server verifies them.
    started = services.start_upload(owner_type="plan_item", owner_id=pk, filename="scan.pdf",
                                    size=n, checksum=sha256_hex, tenant=clinic_id, user=request.user)
    ...  # the client PUTs the bytes to services.upload_target(started.upload)
    attachment = services.complete_upload(started.upload.pk, tenant=clinic_id, user=request.user)

Policy (see :mod:`django_attachments.policy`): an owner must resolve through
its registered resolver, be in the caller's ``tenant`` (when one is given) and
share the blob's subject.
"""

from ..policy import resolve_owner
from . import variants
from .attaching import (
    attach,
    attachments_for,
    blob_url,
    link,
    open_blob,
    unlink,
    unlink_all_for_owner,
    update_attachment,
)
from .direct import (
    StartedUpload,
    cancel_upload,
    complete_upload,
    get_upload,
    receive_upload,
    start_upload,
    upload_target,
)
from .multipart import held_parts, receive_part, sign_parts, verify_upload
from .purging import (
    PurgeResult,
    find_dangling,
    purge_incomplete_uploads,
    purge_orphans,
    purge_stale_variants,
    purge_strays,
    purge_uploads,
)
from .verifying import VerifyResult, verify_blobs

__all__ = [
    "PurgeResult",
    "StartedUpload",
    "attach",
    "attachments_for",
    "blob_url",
    "cancel_upload",
    "complete_upload",
    "find_dangling",
    "get_upload",
    "held_parts",
    "link",
    "open_blob",
    "purge_incomplete_uploads",
    "purge_orphans",
    "purge_stale_variants",
    "purge_strays",
    "purge_uploads",
    "receive_part",
    "receive_upload",
    "resolve_owner",
    "sign_parts",
    "start_upload",
    "unlink",
    "unlink_all_for_owner",
    "update_attachment",
    "upload_target",
    "VerifyResult",
    "verify_blobs",
    "verify_upload",
    "variants",
]
