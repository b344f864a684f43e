"""Multipart direct uploads: large files sent in parts, each verified, resumable, then read back once.

A direct upload larger than ``MULTIPART_THRESHOLD`` is multipart
(:func:`~.direct.start_upload` decides). The server chooses the part size
(:func:`part_size_for`) and begins the storage's multipart upload; then:

1. :func:`sign_parts`: the client names parts by number with each part's
   SHA-256 and gets a request per part bound to its exact length and that
   SHA-256 (a presigned ``UploadPart`` on S3, which refuses other bytes; this
   API's own URL elsewhere, where :func:`receive_part` checks them). A part's
   SHA-256 is fixed once signed (:class:`~django_attachments.models.UploadPart`),
   so every part the storage holds is the one recorded.
2. :func:`held_parts`: what the storage holds (``ListParts``), so that a client
   that stopped resumes without sending a finished part again.
3. :func:`~.direct.complete_upload` checks that every part is held, moves
   the ticket to ``verifying`` and sends :data:`~django_attachments.signals.upload_parts_received`
   on commit; the task runs :func:`verify_upload`: it joins the parts
   (``CompleteMultipartUpload`` with every part's checksum and
   ``If-None-Match: *``, or a streamed join on local disk), reads the object
   back once for its SHA-256 (S3 reports none for a multipart object) and its
   sniffed type, then makes the blob and the attachment, deduplicated, as a
   single upload's completion does. Until then no blob exists.

Every step may run twice or at once: signing is idempotent per checksum, a
part sent twice is the same bytes, and verification is claimed (with a lease
renewed while it reads), so two tasks never join or record one upload twice.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import IO, Any

from django.db import connection, connections, transaction
from django.utils import timezone

from .. import ingest
from ..conf import MAX_PART_SIZE, app_settings
from ..exceptions import (
    AttachmentError,
    FileTooLarge,
    InvalidValue,
    ObjectExists,
    ObjectMissing,
    PartConflict,
    PartMismatch,
    PartsMissing,
    StorageError,
    TryAgain,
    UploadClosed,
    UploadExpired,
    UploadLost,
    UploadMismatch,
)
from ..models import DirectUpload, UploadPart
from ..signals import upload_parts_received
from ..stores import BaseStore, UploadedPart, UploadTarget, composite_of, get_store

logger = logging.getLogger(__name__)

#: The most parts one multipart upload may have (S3's limit).
MAX_PARTS = 10_000
#: The largest object a multipart upload makes (S3's limit: 5 TiB).
MAX_OBJECT_SIZE = 5 * 1024**4
#: The most parts one request may ask signed requests for.
MAX_PARTS_PER_REQUEST = 100
#: How long a verification's claim lasts without renewal; the reader renews it as it goes.
VERIFY_LEASE = timedelta(minutes=5)
#: How often a verification renews its claim while it works.
_RENEW_EVERY = 30.0
#: How long a verification may go without progress (one read-back chunk; the whole join) before its
#: claim is left to lapse: a storage read that hangs does not hold the ticket for ever.
_STALL_LIMIT = 3600.0
_MiB = 1024 * 1024


def part_size_for(size: int) -> int:
    """The part size of a multipart upload of ``size`` bytes: the setting, raised to fit in 10,000 parts.

    Raises FileTooLarge above 5 TiB, the largest object S3 makes.
    """
    if size > MAX_OBJECT_SIZE:
        raise FileTooLarge(
            f"A direct upload takes at most {MAX_OBJECT_SIZE} bytes (5 TiB); this file has {size}.",
            limit=MAX_OBJECT_SIZE,
        )
    least = -(-size // MAX_PARTS)
    least = -(-least // _MiB) * _MiB  # whole MiB
    return min(max(app_settings.MULTIPART_PART_SIZE, least), MAX_PART_SIZE)


def begin(store: BaseStore, identifiers: dict[str, Any], size: int) -> tuple[str, int]:
    """Begin the storage's multipart upload to a reserved name: its id and the part size."""
    part_size = part_size_for(size)
    return store.start_multipart(identifiers, content_type="application/octet-stream"), part_size


# -- 1. sign parts ---------------------------------------------------------------------


@dataclass(frozen=True)
class PartRequest:
    """A part's signed request: send ``size`` bytes with ``target``, or, where it is None, to the API's own URL."""

    number: int
    size: int
    checksum: str
    target: UploadTarget | None


def check_open(upload: DirectUpload) -> None:
    """Raise unless the ticket is a pending, unexpired multipart upload."""
    if not upload.is_multipart:
        raise UploadClosed("This upload is sent in one request, not in parts.", code="upload_closed")
    if upload.status != DirectUpload.PENDING:
        raise UploadClosed(f"This upload is {upload.status}; it takes no more parts.")
    if upload.expires_at <= timezone.now():
        raise UploadExpired("This upload has expired; start a new one.")


def _checked_parts(upload: DirectUpload, parts: Iterable[tuple[Any, Any]]) -> dict[int, str]:
    count = upload.part_count or 0
    wanted: dict[int, str] = {}
    for number, checksum in parts:
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= count:
            raise InvalidValue(f"Part numbers of this upload go from 1 to {count}, not {number!r}.", field="parts")
        if not isinstance(checksum, str) or len(checksum) != 64 or not _is_hex(checksum):
            raise InvalidValue(
                f"The checksum of part {number} must be a SHA-256 digest in hexadecimal (64 characters).",
                field="parts",
            )
        if wanted.setdefault(number, checksum.lower()) != checksum.lower():
            raise InvalidValue(f"Part {number} is named twice with different checksums.", field="parts")
    if not wanted:
        raise InvalidValue("Name at least one part.", field="parts")
    if len(wanted) > MAX_PARTS_PER_REQUEST:
        raise InvalidValue(f"Ask for at most {MAX_PARTS_PER_REQUEST} parts at once.", field="parts")
    return wanted


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return text.isascii() and text.isalnum()


def sign_parts(upload: DirectUpload, parts: Iterable[tuple[Any, Any]]) -> list[PartRequest]:
    """Signed requests for ``parts`` ((number, SHA-256 hex) pairs) of a pending multipart upload.

    Records each part's length and SHA-256; a number signed before with
    another SHA-256 raises PartConflict (409), with the same one it is signed
    again (a part may be sent again). Valid until the ticket expires.
    """
    check_open(upload)
    wanted = _checked_parts(upload, parts)
    rows = [UploadPart(upload=upload, number=n, size=upload.part_length(n), checksum=c) for n, c in wanted.items()]
    with transaction.atomic():
        # Under the ticket's lock, which the purge and a cancel take too: the ticket cannot be
        # deleted under the new rows (a foreign key SQLite would only check at commit).
        ticket = _locked_open(upload)
        UploadPart.objects.bulk_create(rows, ignore_conflicts=True)
        recorded = dict(
            UploadPart.objects.filter(upload=upload, number__in=list(wanted)).values_list("number", "checksum")
        )
        for number, checksum in sorted(wanted.items()):
            if recorded.get(number) != checksum:
                raise PartConflict(
                    f"Part {number} was signed with SHA-256 {recorded.get(number)}; a part's checksum cannot "
                    "change. If the file changed, start a new upload."
                )
        _extend(ticket)
    upload.expires_at = ticket.expires_at
    store = get_store(upload.storage)
    remaining = max(1, int((upload.expires_at - timezone.now()).total_seconds()))
    return [
        PartRequest(
            number=number,
            size=upload.part_length(number),
            checksum=checksum,
            target=store.part_target(
                upload.storage_identifiers,
                upload.multipart_id,
                number=number,
                size=upload.part_length(number),
                checksum=checksum,
                expires=remaining,
            ),
        )
        for number, checksum in sorted(wanted.items())
    ]


def _locked_open(upload: DirectUpload) -> DirectUpload:
    """Inside a transaction: the ticket locked, and still pending and unexpired (else the error to answer)."""
    from .direct import _lock_ticket

    ticket = _lock_ticket(upload.pk)
    if ticket is None:
        raise UploadExpired("This upload has expired; start a new one.")
    check_open(ticket)
    return ticket


def _extend(ticket: DirectUpload) -> None:
    """A multipart upload in progress stays open ``UPLOAD_EXPIRY`` past its last part signed or received:
    a large file over a slow line takes longer than one expiry, and its client is still at work."""
    later = timezone.now() + app_settings.UPLOAD_EXPIRY
    if later > ticket.expires_at:
        ticket.expires_at = later
        ticket.save(update_fields=["expires_at"])


# -- 2. parts the API receives (stores that cannot sign) --------------------------------


def receive_part(upload: DirectUpload, number: int, stream: IO[bytes], *, length: int, checksum: str) -> None:
    """Keep part ``number`` of ``length`` bytes from ``stream``, which must hash to ``checksum`` (the signed one).

    Memory stays at one chunk: the part goes through a temporary file,
    hashed on the way, and is kept only when its length and SHA-256 are the
    signed ones; otherwise nothing is kept and the part may be sent again.
    """
    check_open(upload)
    part = UploadPart.objects.filter(upload=upload, number=number).first()
    if part is None or part.checksum != checksum:
        raise PartConflict(f"Part {number} was not signed with this checksum; ask for its request again.")
    if length != part.size:
        raise UploadMismatch(
            f"Part {number} has {part.size} bytes; the body has {length}. Send exactly the part's bytes.",
            code="size_mismatch",
        )
    from .direct import spool_body

    with spool_body(stream, length, "part") as (spool, digest):
        if digest.checksum != checksum:
            raise UploadMismatch(
                f"Part {number} has SHA-256 {digest.checksum}, not the {checksum} signed; nothing was kept. "
                "Send it again.",
                code="checksum_mismatch",
            )
        # Kept under the ticket's lock, which completion and cancelling take too: a part that
        # arrives once the parts are being joined, or dropped, is refused rather than left behind.
        with transaction.atomic():
            ticket = _locked_open(upload)
            _extend(ticket)
            try:
                get_store(upload.storage).save_part(
                    upload.storage_identifiers,
                    upload.multipart_id,
                    number=number,
                    content=spool,
                    size=length,
                    checksum=checksum,
                )
            except ObjectMissing:
                raise _lost() from None


# -- 3. what the storage holds -------------------------------------------------------


def _held(store: BaseStore, upload: DirectUpload) -> dict[int, UploadedPart]:
    """The parts the storage holds that are the recorded ones (length, and SHA-256 where it reports one)."""
    recorded = {part.number: part for part in UploadPart.objects.filter(upload=upload)}
    held: dict[int, UploadedPart] = {}
    for part in store.list_parts(upload.storage_identifiers, upload.multipart_id):
        expected = recorded.get(part.number)
        if expected is None or part.size != expected.size:
            continue
        if part.checksum is not None and part.checksum != expected.checksum:
            continue
        held[part.number] = UploadedPart(number=part.number, size=part.size, etag=part.etag, checksum=expected.checksum)
    return held


def _lost() -> UploadLost:
    return UploadLost(
        "The storage no longer holds this upload's parts (it was aborted outside this application); start a new upload."
    )


def held_parts(upload: DirectUpload) -> list[UploadedPart]:
    """The whole parts the storage holds for a multipart upload, by number, with their SHA-256.

    Empty once the upload is no longer pending (its parts are joined, or
    dropped); UploadLost (410) when the storage forgot a pending one.
    """
    if not upload.is_multipart or upload.status != DirectUpload.PENDING:
        return []
    try:
        held = _held(get_store(upload.storage), upload)
    except ObjectMissing:
        raise _lost() from None
    return [held[number] for number in sorted(held)]


def list_held(upload: DirectUpload) -> dict[int, UploadedPart] | None:
    """What the storage holds of a multipart upload, asked before completion locks the ticket (so that no
    database lock is held while the storage answers); None when the storage has forgotten the upload."""
    try:
        return _held(get_store(upload.storage), upload)
    except ObjectMissing:
        return None


def receive_all(upload: DirectUpload, checksum: str | None, held: dict[int, UploadedPart] | None) -> None:
    """Inside complete_upload's lock: every part is held (``held``, from :func:`list_held` just before), so
    verifying begins (on commit). Parts held a moment ago are held still: nothing removes a part of a
    pending upload but a cancel or the purge, which close the ticket first.

    Raises PartsMissing (the ticket stays open) naming the parts still to send, UploadLost when
    the storage forgot the upload.
    """
    if checksum:
        if upload.checksum and upload.checksum != checksum:
            raise InvalidValue(
                f"The checksum {checksum} differs from the {upload.checksum} declared when the upload began.",
                field="checksum",
            )
        upload.checksum = checksum
    if held is None:
        raise _lost()  # the ticket fails: no part can be sent to it any more
    missing = [number for number in range(1, (upload.part_count or 0) + 1) if number not in held]
    if missing:
        shown = ", ".join(map(str, missing[:20])) + (", ..." if len(missing) > 20 else "")
        raise PartsMissing(
            f"The storage lacks {len(missing)} of the {upload.part_count} parts of this upload ({shown}); "
            "send them, then complete again.",
            missing=missing,
        )
    now = timezone.now()
    upload.status = DirectUpload.VERIFYING
    upload.claim_token, upload.claimed_at = "", now  # claimed_at: when it was queued, until a task claims it
    upload.expires_at = max(upload.expires_at, now + app_settings.UPLOAD_EXPIRY)
    upload.save(update_fields=["status", "checksum", "claim_token", "claimed_at", "expires_at"])
    transaction.on_commit(functools.partial(_announce, upload.pk))


def _announce(upload_id: Any) -> None:
    upload = DirectUpload.objects.filter(pk=upload_id).first()
    if upload is not None:
        upload_parts_received.send(sender=DirectUpload, upload=upload)


def is_stalled(upload: DirectUpload) -> bool:
    """Whether a verifying upload's task has not claimed it, or its claim lapsed, for longer than the lease."""
    return (
        upload.status == DirectUpload.VERIFYING
        and upload.claimed_at is not None
        and upload.claimed_at < timezone.now() - VERIFY_LEASE
    )


def nudge(upload: DirectUpload) -> None:
    """Announce a stalled verification again (its task was lost: a worker died, the backend refused it)."""
    if is_stalled(upload):
        transaction.on_commit(functools.partial(_announce, upload.pk))


# -- 4. verify (the task) ----------------------------------------------------------------


@dataclass(frozen=True)
class VerifyOutcome:
    """What :func:`verify_upload` did: ``completed``, ``failed``, ``busy`` (claimed elsewhere, or not
    verifying), ``retry`` (the storage failed: the claim is released) or ``waiting`` (parts went missing:
    the ticket is open again)."""

    upload_id: str
    status: str
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"upload": self.upload_id, "status": self.status, "error": self.error}


class _LostClaim(Exception):
    """Another run took the claim over (ours lapsed): this one stops, having recorded nothing."""


def _drop_connections() -> None:
    """Forget this thread's database connections, however broken: the next query opens a new one."""
    for wrapper in connections.all(initialized_only=True):
        try:
            wrapper.close()
        except Exception:  # noqa: S110 (closing a connection the server dropped may fail too)
            pass
        # Django keeps an in-memory SQLite connection open on close(): let go of it all the same.
        wrapper.connection = None


class _Claim:
    def __init__(self, upload_id: Any, token: str) -> None:
        self.upload_id, self.token = upload_id, token
        self.lost = False
        self._progress = time.monotonic()

    def renew(self) -> None:
        kept = DirectUpload.objects.filter(
            pk=self.upload_id, status=DirectUpload.VERIFYING, claim_token=self.token
        ).update(claimed_at=timezone.now())
        if not kept:
            self.lost = True

    def check(self) -> None:
        """Raise _LostClaim when the claim was lost (taken over, the ticket closed or gone); else note progress."""
        if self.lost:
            raise _LostClaim()
        self._progress = time.monotonic()

    @contextmanager
    def kept_alive(self) -> Iterator[None]:
        """Renew the claim every ``_RENEW_EVERY`` seconds from a thread, while the join and the read-back
        run (a join of a large upload on local disk, or a read-back, outlasts the lease).

        Renewed only while the work moves (each chunk read back notes it; a join counts as one step
        of at most ``_STALL_LIMIT``): a read hung on the storage lets the claim lapse, for another run.
        Not inside a caller's transaction: the heartbeat would wait for the row this claim locked
        until that transaction ends, and the end would wait for the heartbeat.
        """
        if connection.in_atomic_block:
            yield
            return
        stop = threading.Event()

        def beat() -> None:
            try:
                while not stop.wait(_RENEW_EVERY):
                    if time.monotonic() - self._progress > _STALL_LIMIT:
                        continue  # stuck: let the lease lapse
                    try:
                        self.renew()
                    except Exception:  # a dropped connection, most likely: a new one next time
                        logger.warning(
                            "Could not renew the verification claim of upload %s", self.upload_id, exc_info=True
                        )
                        _drop_connections()
            finally:
                connections.close_all()  # this thread's own connections

        thread = threading.Thread(target=beat, name=f"verify-{self.upload_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def release(self) -> None:
        """Give the claim up so that the next announcement (or the next complete) starts again at once."""
        DirectUpload.objects.filter(pk=self.upload_id, claim_token=self.token).update(
            claim_token="", claimed_at=timezone.now() - VERIFY_LEASE - timedelta(seconds=1)
        )


def _claim(upload_id: Any) -> _Claim | None:
    token = uuid.uuid4().hex
    now = timezone.now()
    claimed = (
        DirectUpload.objects.filter(pk=upload_id, status=DirectUpload.VERIFYING)
        .exclude(claim_token__gt="", claimed_at__gte=now - VERIFY_LEASE)
        .update(claim_token=token, claimed_at=now)
    )
    return _Claim(upload_id, token) if claimed else None


def verify_upload(upload_id: Any) -> VerifyOutcome:
    """Join a verifying multipart upload's parts, read the object back, and record it (or fail the ticket).

    Idempotent and safe to run twice at once: the first run claims the
    ticket, a second finds it claimed (``busy``). A storage failure releases
    the claim (``retry``); completing again, or the next run, starts over.
    """
    claim = _claim(upload_id)
    if claim is None:
        return VerifyOutcome(str(upload_id), "busy")
    upload = DirectUpload.objects.get(pk=upload_id)
    store = get_store(upload.storage)
    try:
        with claim.kept_alive():
            return _verify_claimed(upload, store, claim)
    except _LostClaim:
        return VerifyOutcome(str(upload_id), "busy")


def _verify_claimed(upload: DirectUpload, store: BaseStore, claim: _Claim) -> VerifyOutcome:
    from .direct import finish_verified  # the single upload's recording, shared

    upload_id = upload.pk
    verified: ReadBack | AttachmentError
    try:
        try:
            stat = _join(store, upload, claim)
        except PartsMissing as exc:
            DirectUpload.objects.filter(pk=upload.pk, claim_token=claim.token).update(
                status=DirectUpload.PENDING, claim_token="", claimed_at=None
            )
            return VerifyOutcome(str(upload_id), "waiting", str(exc))
        verified = _read_back(store, upload, stat, claim)
    except (StorageError, TryAgain) as exc:
        logger.warning("Verifying direct upload %s failed for now; it will be retried: %s", upload_id, exc)
        claim.release()
        return VerifyOutcome(str(upload_id), "retry", str(exc))
    except AttachmentError as exc:
        verified = exc
    claim.check()
    return finish_verified(upload.pk, claim.token, verified, on_retry=claim.release)


def _join(store: BaseStore, upload: DirectUpload, claim: _Claim) -> Any:
    """Complete the storage's multipart upload (again, after a crash, where it must); the object's stat."""
    try:
        held = _held(store, upload)
    except ObjectMissing:
        # No such upload: a run before this one completed it (S3 forgets an upload it completed).
        try:
            return store.stat(upload.storage_identifiers)
        except ObjectMissing:
            raise PartsMissing("The storage holds neither this upload's parts nor its object.", missing=[]) from None
    count = upload.part_count or 0
    missing = [number for number in range(1, count + 1) if number not in held]
    if missing:
        raise PartsMissing(f"The storage lost parts {missing[:20]} of this upload.", missing=missing)
    parts = [held[number] for number in range(1, count + 1)]
    claim.check()  # the join is one step of progress, however long it takes
    try:
        return store.complete_multipart(upload.storage_identifiers, upload.multipart_id, parts)
    except ObjectExists:
        # Parts still held and an object there: a join that died midway (the parts go only once
        # the ticket is closed). The reserved name is this ticket's alone: join again, if the
        # claim is still ours (another run may be joining it now).
        claim.renew()
        claim.check()
        store.delete(upload.storage_identifiers)
        return store.complete_multipart(upload.storage_identifiers, upload.multipart_id, parts)


@dataclass(frozen=True)
class ReadBack:
    size: int
    checksum: str
    head: bytes
    identifiers: dict[str, Any]


def _read_back(store: BaseStore, upload: DirectUpload, stat: Any, claim: _Claim) -> ReadBack:
    """The object's size, SHA-256 and first bytes: the whole object is read unless the join computed them.

    Every part must be the one it was signed with, whatever the store let
    through (S3 and SeaweedFS check the signed checksums; moto keeps a part
    without checking it). Where the store reports the composite SHA-256 it
    computed from the parts it joined (S3's ``COMPOSITE`` checksum, trusted
    as :attr:`~django_attachments.stores.s3.S3Store.trust_reported_checksums`
    says) and it is the signed parts' composite, that is known without
    reading; otherwise each part is hashed again on the way, beside the
    whole object's SHA-256, and compared. Where the join read the parts
    (local disk), the API checked each part as it arrived.
    """
    if stat.size != upload.size:
        raise UploadMismatch(
            f"The storage holds {stat.size} bytes for this upload; {upload.size} were declared.",
            code="size_mismatch",
        )
    if stat.checksum:  # joined by reading every part (local disk): nothing more to read but the head
        from .direct import _read_head

        return ReadBack(stat.size, stat.checksum, _read_head(store, stat.identifiers, stat.size), stat.identifiers)
    expected = dict(UploadPart.objects.filter(upload=upload).values_list("number", "checksum"))
    signed = [expected.get(number) for number in range(1, (upload.part_count or 0) + 1)]
    parts_known = (
        stat.composite_checksum is not None
        and bool(signed)
        and None not in signed
        and stat.composite_checksum == composite_of([str(checksum) for checksum in signed])
    )
    hasher = ingest.Hasher(app_settings.SNIFF_BYTES)
    parts = None if parts_known else _PartHashes(upload.part_size or 1, expected)
    # The next chunk is read while this one is hashed, and the parts (where they are hashed) in a
    # third thread: hashlib and the socket let go of the GIL, so on two cores the read-back takes
    # little longer than one SHA-256 pass.
    with (
        store.open(stat.identifiers) as stream,
        ingest.read_ahead(stream.chunks()) as chunks,
        ThreadPoolExecutor(1) as helper,
    ):
        pending = None
        for chunk in chunks:
            if pending is not None:
                pending.result()
            if parts is not None:
                pending = helper.submit(parts.update, chunk)
            hasher.update(chunk)
            claim.check()
        if pending is not None:
            pending.result()
    if parts is not None:
        parts.finish()
    digest = hasher.digest()
    return ReadBack(digest.size, digest.checksum, digest.head, stat.identifiers)


class _PartHashes:
    """Each part's SHA-256, from the object's bytes fed in order, checked against the one it was signed with."""

    def __init__(self, part_size: int, expected: dict[int, str]) -> None:
        self.part_size, self.expected = part_size, expected
        self.hasher, self.number, self.filled = ingest.Hasher(0), 1, 0

    def update(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            take = min(len(view), self.part_size - self.filled)
            self.hasher.update(view[:take])
            view, self.filled = view[take:], self.filled + take
            if self.filled == self.part_size:
                self._check()

    def finish(self) -> None:
        if self.filled:
            self._check()

    def _check(self) -> None:
        _check_part(self.number, self.hasher, self.expected)
        self.hasher, self.number, self.filled = ingest.Hasher(0), self.number + 1, 0


def _check_part(number: int, hasher: ingest.Hasher, expected: dict[int, str]) -> None:
    checksum = hasher.digest().checksum
    if expected.get(number) != checksum:
        raise PartMismatch(
            f"Part {number} holds bytes with SHA-256 {checksum}, not the {expected.get(number)} it was signed with.",
            number=number,
        )


def abandon(store: BaseStore, upload: DirectUpload) -> None:
    """Drop a closed multipart upload's parts from the storage (an unknown upload is no error)."""
    if upload.is_multipart:
        try:
            store.abort_multipart(upload.storage_identifiers, upload.multipart_id)
        except StorageError:
            logger.warning("Could not drop the parts of upload %s; the purge will.", upload.pk, exc_info=True)
