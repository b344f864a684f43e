"""Two tables: what the app knows about stored bytes, and who they belong to.

A :class:`Blob` is one stored file: its SHA-256, size, sniffed content type,
sanitised filename, and the *opaque* identifiers its storage handed back. The
bytes themselves live in a Django storage. Identical bytes are stored once per
(tenant, subject).

An :class:`Attachment` links a blob to an owner, named by ``owner_type`` (a
registered free-text name, never a foreign key or a CHECK constraint) and
``owner_id``. A blob without attachments is an *orphan*, removed by the purge
after a grace period. Create and delete both through
:mod:`django_attachments.services`, which keeps bytes and rows consistent.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Exists, OuterRef
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .registry import OWNER_TYPE_MAX_LENGTH

OWNER_ID_MAX_LENGTH = 64
TENANT_MAX_LENGTH = 64
SUBJECT_MAX_LENGTH = 64
NAME_MAX_LENGTH = 64
FILENAME_MAX_LENGTH = 255
#: Characters of an attachment's description (a text column: the limit is the app's, checked by the services).
DESCRIPTION_MAX_LENGTH = 10_000

_sha256_hex = RegexValidator(r"^[0-9a-f]{64}$", _("Enter a lowercase hexadecimal SHA-256 digest."))


def object_name() -> Cast:
    """The storage's name for a blob's object, out of its identifiers, as plain text.

    The same expression serves the index and the stray sweep's look-ups, so
    that the database can use one for the other. (A bare KeyTextTransform
    would compare its values as JSON on SQLite.)
    """
    return Cast(KeyTextTransform("name", "storage_identifiers"), output_field=models.CharField())


class BlobQuerySet(models.QuerySet):
    def orphans(self) -> BlobQuerySet:
        """Blobs that no attachment references."""
        return self.filter(~Exists(Attachment.objects.filter(blob=OuterRef("pk"))))

    def with_object_names(self, names: list[str]) -> BlobQuerySet:
        """Blobs whose object (in its storage) has one of ``names``."""
        return self.annotate(object_name=object_name()).filter(object_name__in=names)

    def for_tenant(self, tenant: str | None) -> BlobQuerySet:
        """Blobs of ``tenant``; ``None`` means every tenant (a trusted caller)."""
        return self if tenant is None else self.filter(tenant=str(tenant))


class ScanState(models.TextChoices):
    """Where a blob stands with the malware scanner (``Blob.scan_state``)."""

    #: Waiting for the scanner (just stored, or a scanner installed since).
    PENDING = "pending", _("pending")
    #: Scanned; nothing found.
    CLEAN = "clean", _("clean")
    #: Scanned; a threat found (``scan_signature``). Never served, linked or deduplicated against.
    INFECTED = "infected", _("infected")
    #: The scan could not run (scanner down, timed out, file over its limit); retried.
    FAILED = "failed", _("failed")
    #: No scanner was configured when the blob was stored.
    NOT_SCANNED = "not_scanned", _("not scanned")


class AnalysisState(models.TextChoices):
    """Where a blob stands with the metadata analyzers (``Blob.analysis_state``)."""

    #: Waiting for the analyzers that read its type.
    PENDING = "pending", _("pending")
    #: Every analyzer that reads its type ran; their values are in ``metadata``.
    ANALYZED = "analyzed", _("analyzed")
    #: At least one analyzer refused the file (``analysis_errors`` says which, and why).
    FAILED = "failed", _("failed")
    #: No analyzer reads its type (or none is installed).
    NOT_ANALYZED = "not_analyzed", _("not analyzed")


class Blob(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    checksum = models.CharField(_("SHA-256"), max_length=64, validators=[_sha256_hex])
    size = models.PositiveBigIntegerField(_("size in bytes"))
    content_type = models.CharField(_("content type"), max_length=255, help_text=_("Sniffed from the bytes."))
    filename = models.CharField(_("filename"), max_length=FILENAME_MAX_LENGTH)
    storage = models.CharField(_("storage alias"), max_length=64)
    storage_identifiers = models.JSONField(_("storage identifiers"), default=dict)
    metadata = models.JSONField(_("metadata"), default=dict, blank=True)
    tenant = models.CharField(_("tenant"), max_length=TENANT_MAX_LENGTH, blank=True, default="")
    subject = models.CharField(_("subject"), max_length=SUBJECT_MAX_LENGTH, blank=True, default="")
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    # -- the processing pipeline (services.processing) --
    scan_state = models.CharField(_("scan"), max_length=16, choices=ScanState.choices, default=ScanState.NOT_SCANNED)
    scan_signature = models.CharField(
        _("threat found"), max_length=255, blank=True, default="", help_text=_("What the scanner found.")
    )
    scanned_by = models.CharField(_("scanned by"), max_length=255, blank=True, default="")
    scanned_at = models.DateTimeField(_("scanned at"), null=True, blank=True)
    scan_attempts = models.PositiveSmallIntegerField(_("failed scan attempts"), default=0)
    scan_error_code = models.CharField(_("scan error code"), max_length=64, blank=True, default="")
    scan_error = models.TextField(_("scan error"), blank=True, default="")
    analysis_state = models.CharField(
        _("analysis"), max_length=16, choices=AnalysisState.choices, default=AnalysisState.NOT_ANALYZED
    )
    analysis_errors = models.JSONField(
        _("analysis errors"),
        default=dict,
        blank=True,
        help_text=_("Per analyzer that refused the file: its error code and message."),
    )
    analyzed_at = models.DateTimeField(_("analyzed at"), null=True, blank=True)

    objects = BlobQuerySet.as_manager()

    class Meta:
        verbose_name = _("blob")
        verbose_name_plural = _("blobs")
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "subject", "checksum"], name="django_attachments_blob_unique_content"
            ),
        ]
        indexes = [
            # The stray sweep asks "which of these object names does a blob reference?"
            # in batches: an index on the name inside the opaque identifiers.
            models.Index("storage", object_name(), name="django_att_blob_object_idx"),
            # The pipeline's backlog, the admin's filters and the API's ?scan=.
            models.Index(fields=["scan_state"], name="django_att_blob_scan_idx"),
            models.Index(fields=["analysis_state"], name="django_att_blob_analysis_idx"),
            # The orphan purge walks blobs oldest first, a batch after the last one's (created_at, id);
            # also every "created before" filter.
            models.Index(fields=["created_at", "id"], name="django_att_blob_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.filename} ({self.checksum[:12]})"

    @property
    def is_available(self) -> bool:
        """Whether the blob's bytes may be served, linked and deduplicated against.

        The one rule every read path applies, through
        :func:`~django_attachments.policy.check_available`: downloads,
        redirects, links, the dedup look-ups of uploads and direct uploads.
        An infected blob is not. Serving asks one more question
        (:func:`~django_attachments.policy.check_servable`): whether a blob
        not yet scanned may be served (``SERVE_PENDING_SCANS``).
        """
        return self.scan_state != ScanState.INFECTED

    @property
    def scan_given_up(self) -> bool:
        """Whether a failed scan is left for good: over the scanner's limit, or out of retries."""
        from .conf import app_settings

        return self.scan_state == ScanState.FAILED and (
            self.scan_error_code == "scan_too_large" or self.scan_attempts >= app_settings.SCAN_MAX_ATTEMPTS
        )

    @property
    def is_scanned(self) -> bool:
        """Whether the scanner has had its say (clean or infected), or none was configured."""
        return self.scan_state in (ScanState.CLEAN, ScanState.INFECTED, ScanState.NOT_SCANNED)


class Attachment(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="attachments", verbose_name=_("blob"))
    # Free text on purpose: no choices and no CheckConstraint, in any migration,
    # ever. Owner types come and go with the apps that register them.
    owner_type = models.CharField(_("owner type"), max_length=OWNER_TYPE_MAX_LENGTH)
    owner_id = models.CharField(_("owner id"), max_length=OWNER_ID_MAX_LENGTH)
    name = models.CharField(_("slot"), max_length=NAME_MAX_LENGTH, blank=True, default="")
    description = models.TextField(_("description"), blank=True, default="")
    filename = models.CharField(
        _("filename"),
        max_length=FILENAME_MAX_LENGTH,
        blank=True,
        default="",
        help_text=_("The name the file was uploaded under for this owner (sanitised); the blob keeps its first."),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)

    #: Set on the attachment the services' verbs return (``attach``, ``link``,
    #: ``complete_upload``, ``start_upload``): False when the same link existed
    #: already. None on attachments read from the database.
    was_created: bool | None = None

    class Meta:
        verbose_name = _("attachment")
        verbose_name_plural = _("attachments")
        indexes = [models.Index(fields=["owner_type", "owner_id"], name="django_att_owner_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["blob", "owner_type", "owner_id", "name"], name="django_attachments_attachment_unique_link"
            ),
        ]

    def __str__(self) -> str:
        slot = f" [{self.name}]" if self.name else ""
        return f"{self.owner_type}:{self.owner_id}{slot} -> {self.blob_id}"


class DirectUploadQuerySet(models.QuerySet):
    def for_tenant(self, tenant: str | None) -> DirectUploadQuerySet:
        """Uploads of ``tenant``; ``None`` means every tenant (a trusted caller)."""
        return self if tenant is None else self.filter(tenant=str(tenant))

    def with_object_names(self, names: list[str]) -> DirectUploadQuerySet:
        """Uploads whose reserved object (in its storage) has one of ``names``."""
        return self.annotate(object_name=object_name()).filter(object_name__in=names)


class DirectUpload(models.Model):
    """A ticket for bytes a client sends straight to the storage, verified before a blob exists.

    Created by :func:`django_attachments.services.start_upload` with the owner
    already checked and an object name reserved by the server; completed by
    :func:`~django_attachments.services.complete_upload`, which checks the
    object's size, SHA-256 and sniffed type against what was declared. A
    pending ticket's object is not stray; the purge removes expired tickets
    with their objects.
    """

    PENDING = "pending"
    #: A multipart upload whose parts are all held: its object is being joined and read back.
    VERIFYING = "verifying"
    COMPLETED = "completed"
    FAILED = "failed"
    STATUS_CHOICES = [
        (PENDING, _("pending")),
        (VERIFYING, _("verifying")),
        (COMPLETED, _("completed")),
        (FAILED, _("failed")),
    ]

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    status = models.CharField(_("status"), max_length=16, choices=STATUS_CHOICES, default=PENDING)
    owner_type = models.CharField(_("owner type"), max_length=OWNER_TYPE_MAX_LENGTH)
    owner_id = models.CharField(_("owner id"), max_length=OWNER_ID_MAX_LENGTH)
    name = models.CharField(_("slot"), max_length=NAME_MAX_LENGTH, blank=True, default="")
    description = models.TextField(_("description"), blank=True, default="")
    tenant = models.CharField(_("tenant"), max_length=TENANT_MAX_LENGTH, blank=True, default="")
    subject = models.CharField(_("subject"), max_length=SUBJECT_MAX_LENGTH, blank=True, default="")
    filename = models.CharField(_("filename"), max_length=FILENAME_MAX_LENGTH)
    declared_content_type = models.CharField(_("declared content type"), max_length=255, blank=True, default="")
    size = models.PositiveBigIntegerField(_("declared size in bytes"))
    checksum = models.CharField(
        _("declared SHA-256"),
        max_length=64,
        blank=True,
        default="",
        validators=[_sha256_hex],
        help_text=_("Required for a single request; optional for a multipart upload, whose parts carry their own."),
    )
    storage = models.CharField(_("storage alias"), max_length=64)
    storage_identifiers = models.JSONField(_("storage identifiers"), default=dict)
    multipart_id = models.CharField(
        _("multipart upload id"),
        max_length=1024,
        blank=True,
        default="",
        help_text=_("The storage's id of the multipart upload; empty for an upload in one request."),
    )
    part_size = models.PositiveBigIntegerField(
        _("part size"), null=True, blank=True, help_text=_("Bytes of every part but the last (multipart only).")
    )
    claim_token = models.CharField(_("verification claim"), max_length=32, blank=True, default="")
    claimed_at = models.DateTimeField(_("verification claimed at"), null=True, blank=True)
    received_checksum = models.CharField(
        _("received SHA-256"),
        max_length=64,
        blank=True,
        default="",
        help_text=_("Computed by the server while it wrote the bytes itself (stores that cannot sign URLs)."),
    )
    error_code = models.CharField(_("error code"), max_length=64, blank=True, default="")
    error = models.TextField(_("error"), blank=True, default="")
    attachment = models.ForeignKey(
        Attachment,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("attachment"),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    expires_at = models.DateTimeField(_("expires at"))
    completed_at = models.DateTimeField(_("completed or failed at"), null=True, blank=True)

    objects = DirectUploadQuerySet.as_manager()

    class Meta:
        verbose_name = _("direct upload")
        verbose_name_plural = _("direct uploads")
        indexes = [
            models.Index(fields=["status", "expires_at"], name="django_att_upload_expiry_idx"),
            # The stray sweep keeps the objects of pending uploads.
            models.Index("storage", object_name(), name="django_att_upload_object_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.filename} -> {self.owner_type}:{self.owner_id} ({self.status})"

    @property
    def is_multipart(self) -> bool:
        return bool(self.multipart_id)

    @property
    def part_count(self) -> int | None:
        """How many parts a multipart upload has (every one ``part_size`` bytes but the last); None otherwise."""
        if not self.part_size:
            return None
        return max(1, -(-self.size // self.part_size))

    def part_length(self, number: int) -> int:
        """The exact length of part ``number`` (from 1) of a multipart upload."""
        assert self.part_size
        return min(self.part_size, self.size - (number - 1) * self.part_size)


class UploadPart(models.Model):
    """A part of a multipart upload that a client was given a signed request for: its length and SHA-256.

    The storage says which parts it holds (``ListParts``); this row says what
    each must be. A part's checksum is fixed once signed, so that every part
    the storage holds is the one recorded here (the storage checked the
    signed checksum against the bytes), and completion can hand the storage
    the checksums it requires.
    """

    upload = models.ForeignKey(DirectUpload, on_delete=models.CASCADE, related_name="parts")
    number = models.PositiveIntegerField(_("part number"))
    size = models.PositiveBigIntegerField(_("size in bytes"))
    checksum = models.CharField(_("SHA-256"), max_length=64, validators=[_sha256_hex])
    created_at = models.DateTimeField(_("signed at"), auto_now_add=True)

    class Meta:
        verbose_name = _("upload part")
        verbose_name_plural = _("upload parts")
        constraints = [models.UniqueConstraint(fields=["upload", "number"], name="django_att_upload_part_unique")]

    def __str__(self) -> str:
        return f"part {self.number} of {self.upload_id}"


class VariantQuerySet(models.QuerySet):
    def with_object_names(self, names: list[str]) -> VariantQuerySet:
        """Variants whose object (in its storage) has one of ``names``."""
        return self.annotate(object_name=object_name()).filter(object_name__in=names)

    def for_tenant(self, tenant: str | None) -> VariantQuerySet:
        """Variants of ``tenant``'s blobs; ``None`` means every tenant (a trusted caller)."""
        return self if tenant is None else self.filter(blob__tenant=str(tenant))


class Variant(models.Model):
    """A file derived from a blob (a thumbnail, a preview), stored beside it and served like it.

    Identified by its source and the *digest* of what made it (the variant's
    output spec and the renderer's name and version), unique together: a
    changed spec or renderer makes a new variant, never a stale one, and two
    renders of the same variant cannot both be recorded. A row is written only
    once its bytes are stored (made by :mod:`django_attachments.services.variants`),
    and is purged with its source, rows first, then bytes. The tenant and
    subject are the source's.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    blob = models.ForeignKey(Blob, on_delete=models.CASCADE, related_name="variants", verbose_name=_("source blob"))
    digest = models.CharField(_("spec digest"), max_length=64, validators=[_sha256_hex])
    name = models.CharField(_("variant"), max_length=40, help_text=_("The name it was first made for."))
    spec = models.JSONField(_("spec"), default=dict, help_text=_("The output spec and the renderer that made it."))
    checksum = models.CharField(_("SHA-256"), max_length=64, validators=[_sha256_hex])
    size = models.PositiveBigIntegerField(_("size in bytes"))
    content_type = models.CharField(_("content type"), max_length=255)
    width = models.PositiveIntegerField(_("width"))
    height = models.PositiveIntegerField(_("height"))
    storage = models.CharField(_("storage alias"), max_length=64)
    storage_identifiers = models.JSONField(_("storage identifiers"), default=dict)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = VariantQuerySet.as_manager()

    class Meta:
        verbose_name = _("variant")
        verbose_name_plural = _("variants")
        constraints = [
            models.UniqueConstraint(fields=["blob", "digest"], name="django_attachments_variant_unique"),
        ]
        indexes = [
            # The stray sweep's look-ups, as for blobs.
            models.Index("storage", object_name(), name="django_att_variant_object_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} of {self.blob_id} ({self.width}×{self.height})"

    @property
    def filename(self) -> str:
        """The name the variant is served under: the source's stem, the variant's name and its format."""
        stem = self.blob.filename.rsplit(".", 1)[0] if "." in self.blob.filename else self.blob.filename
        extension = {"image/webp": "webp", "image/jpeg": "jpg", "image/png": "png"}.get(self.content_type, "bin")
        return f"{stem or 'file'}-{self.name}.{extension}"


class RenderState(models.TextChoices):
    """Where a variant not (yet) made stands (``VariantRender.state``)."""

    #: Asked for; a render task is enqueued.
    QUEUED = "queued", _("queued")
    #: A renderer is making it now.
    RENDERING = "rendering", _("rendering")
    #: The renderer refused the file (``error_code``, ``error``): no preview, until the spec or renderer changes.
    FAILED = "failed", _("failed")
    #: It could not be made now (the storage failed, the renderer timed out, the worker lacks the renderer):
    #: tried again from ``retry_at`` on, each time after a longer wait.
    RETRY = "retry", _("to retry")


class VariantRender(models.Model):
    """The claim on making one variant, so that concurrent requests render it once; or why it could not be made.

    Unique on (source, digest) like the variant itself: the first request or
    task inserts it and renders, the others see it and wait (a request gets
    202). The row goes in the transaction that records the variant. A claim
    whose renderer died is taken over once it is older than the lease; a
    failure stays, so a file that cannot be previewed is not rendered again
    on every request (a new spec or renderer version is a new digest).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    blob = models.ForeignKey(Blob, on_delete=models.CASCADE, related_name="renders", verbose_name=_("source blob"))
    digest = models.CharField(_("spec digest"), max_length=64, validators=[_sha256_hex])
    name = models.CharField(_("variant"), max_length=40)
    state = models.CharField(_("state"), max_length=16, choices=RenderState.choices, default=RenderState.QUEUED)
    #: Who holds the claim: a render records its variant only while its token still holds it.
    token = models.UUIDField(_("claim token"), default=uuid.uuid4)
    claimed_at = models.DateTimeField(_("claimed at"), default=timezone.now)
    error_code = models.CharField(_("error code"), max_length=64, blank=True, default="")
    error = models.TextField(_("error"), blank=True, default="")
    #: Renders that could not be made now, in a row (state ``retry``).
    attempts = models.PositiveSmallIntegerField(_("failed attempts"), default=0)
    retry_at = models.DateTimeField(_("retry at"), null=True, blank=True)

    class Meta:
        verbose_name = _("variant render")
        verbose_name_plural = _("variant renders")
        constraints = [
            models.UniqueConstraint(fields=["blob", "digest"], name="django_attachments_variant_render_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name} of {self.blob_id}: {self.state}"


class ReplicaQuerySet(models.QuerySet):
    def with_object_names(self, names: list[str]) -> ReplicaQuerySet:
        """Replicas whose object (in its storage) has one of ``names``."""
        return self.annotate(object_name=object_name()).filter(object_name__in=names)

    def held(self) -> ReplicaQuerySet:
        """Replicas that hold bytes (copied and verified), not failed attempts."""
        return self.filter(state=Replica.COPIED)

    def of_blobs(self) -> ReplicaQuerySet:
        """Copies of blobs themselves, not of their variants."""
        return self.filter(variant__isnull=True)


class Replica(models.Model):
    """A copy of a blob's (or a variant's) bytes in another storage than the one the row names.

    Two kinds, told apart by the storage alias only: a *mirror* copy, in one
    of the ``MIRRORS`` storages, written after every new blob and variant; and
    a *retained* copy, the object a blob was moved away from by
    ``migrate_attachments`` and kept (without ``--delete-source``). Either is
    read when the primary fails or is missing, checked by
    ``verify_attachments`` and removed with its blob by the purge.

    A ``copied`` row is written only once its bytes are stored and verified
    (size and SHA-256), so no row points at missing bytes. A ``failed`` row
    holds no bytes: it says that a mirror copy could not be made, why, how
    many times, and when it is tried again. ``variant`` is set for a
    variant's copy (``blob`` is then the variant's source).
    """

    COPIED = "copied"
    FAILED = "failed"
    STATE_CHOICES = [(COPIED, _("copied")), (FAILED, _("failed"))]

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    blob = models.ForeignKey(Blob, on_delete=models.CASCADE, related_name="replicas", verbose_name=_("blob"))
    variant = models.ForeignKey(
        Variant, on_delete=models.CASCADE, null=True, blank=True, related_name="replicas", verbose_name=_("variant")
    )
    storage = models.CharField(_("storage alias"), max_length=64)
    storage_identifiers = models.JSONField(_("storage identifiers"), default=dict, blank=True)
    state = models.CharField(_("state"), max_length=16, choices=STATE_CHOICES, default=COPIED)
    attempts = models.PositiveSmallIntegerField(_("failed attempts"), default=0)
    error_code = models.CharField(_("error code"), max_length=64, blank=True, default="")
    error = models.TextField(_("error"), blank=True, default="")
    retry_at = models.DateTimeField(_("retry at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = ReplicaQuerySet.as_manager()

    class Meta:
        verbose_name = _("replica")
        verbose_name_plural = _("replicas")
        constraints = [
            # One copy per storage of a blob, and of each variant (NULLs are distinct in a unique index).
            models.UniqueConstraint(
                fields=["blob", "storage"],
                condition=models.Q(variant__isnull=True),
                name="django_att_replica_blob_unique",
            ),
            models.UniqueConstraint(
                fields=["variant", "storage"],
                condition=models.Q(variant__isnull=False),
                name="django_att_replica_variant_unique",
            ),
        ]
        indexes = [
            # The stray sweep's look-ups, as for blobs.
            models.Index("storage", object_name(), name="django_att_replica_object_idx"),
            models.Index(fields=["state", "retry_at"], name="django_att_replica_retry_idx"),
        ]

    def __str__(self) -> str:
        what = f"variant {self.variant_id}" if self.variant_id else f"blob {self.blob_id}"
        return f"{what} in {self.storage} ({self.state})"

    @property
    def copy_of(self) -> Blob | Variant:
        """The blob, or the variant, whose bytes this is a copy of."""
        return self.variant if self.variant is not None else self.blob
