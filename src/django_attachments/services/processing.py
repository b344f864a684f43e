"""After the bytes land: the malware scan, then the metadata analyzers, each recorded on the blob.

A new blob starts ``pending`` for each stage that applies to it (a scanner is
configured; an analyzer reads its type), else ``not_scanned`` /
``not_analyzed``. :func:`process` runs what is left to do for one blob, and is
what the Tasks-framework task (:mod:`django_attachments.tasks`) and
``manage.py process_attachments`` call::

    outcome = processing.process(blob_id)               # scan, then analyze
    outcome.scan, outcome.analysis                      # the states after
    outcome.retry_in                                    # a failed scan: when to try again

Each step is idempotent and safe to run twice at once:

- The scan reads the object from its storage in chunks and records the verdict
  with one conditional ``UPDATE``: a blob already judged keeps its verdict
  (unless ``force``), and only the run that turns a blob ``infected`` sends
  :data:`~django_attachments.signals.blob_infected`. A scanner that cannot
  scan (down, timed out) records ``failed``, never ``clean``; the caller
  retries it after :func:`retry_delay`.
- Analysis runs only once the scan passed (``clean``; or ``not_scanned`` while
  no scanner is configured, see :func:`~django_attachments.policy.parseable_scans`):
  an infected file, or one still waiting for its first scan, is never parsed.
  Each analyzer reads what it needs through ranged reads (:class:`~django_attachments.stores.SeekableReader`), never the
  whole file unless it must. The results are merged into ``Blob.metadata``
  under the row's lock, per analyzer: a run replaces the keys of the
  analyzers it ran (``image.*``) and no other key, so concurrent runs and
  re-runs never lose another's values. A malformed file is an error recorded
  per analyzer (``analysis_errors``), never a failed upload.

A worker that dies mid-step leaves the blob ``pending`` (or ``failed``), which
the next run of the task or of the command finishes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from ..conf import app_settings
from ..exceptions import ObjectMissing, StorageError
from ..models import AnalysisState, Blob, ScanState
from ..policy import parseable_scans
from ..processing.analyzers import AnalysisError, AnalysisUnavailable, Analyzer
from ..processing.scanners import ScanError, Scanner, ScanTooLarge
from ..signals import blob_infected
from ..stores import SeekableReader
from .replicas import locate, open_row

logger = logging.getLogger(__name__)

#: The stages of the pipeline, in the order they run.
STAGES = ("scan", "analyze", "variants")

#: Scan states the scanner has yet to settle (a scan is due).
SCAN_DUE = (ScanState.PENDING, ScanState.FAILED)
#: The longest wait between two scan attempts, however many failed.
MAX_RETRY_DELAY = timedelta(days=1)


@dataclass
class ProcessOutcome:
    """What one :func:`process` call did to one blob."""

    blob_id: str
    #: False when the blob no longer exists (purged meanwhile): nothing to do.
    found: bool = True
    #: The states after the call.
    scan: str = ""
    analysis: str = ""
    #: The stages that ran now ("scan", "analyze", "variants").
    ran: list[str] = field(default_factory=list)
    #: The eager variants' outcomes (name -> "made", "exists", "busy", "failed", ...), when that stage ran.
    variants: dict[str, str] = field(default_factory=dict)
    #: A failed scan to be tried again: after this many seconds (None: not again, or nothing failed).
    retry_in: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def analyzers_for(content_type: str) -> list[Analyzer]:
    """The configured analyzers that read ``content_type`` and can run here (their library installed)."""
    return [
        analyzer
        for analyzer in app_settings.ANALYZERS
        if analyzer.accepts(content_type) and analyzer.unavailable_reason() is None
    ]


def initial_states(content_type: str) -> dict[str, str]:
    """The states a new blob of ``content_type`` starts in (the fields to create it with)."""
    scan = ScanState.PENDING if app_settings.SCANNER is not None else ScanState.NOT_SCANNED
    analysis = AnalysisState.PENDING if analyzers_for(content_type) else AnalysisState.NOT_ANALYZED
    return {"scan_state": str(scan), "analysis_state": str(analysis)}


def unfinished() -> QuerySet[Blob]:
    """Blobs a stage is due for: a scan pending or failed, or an analysis pending (the backlog of a dead worker)."""
    return Blob.objects.filter(Q(scan_state__in=SCAN_DUE) | Q(analysis_state=AnalysisState.PENDING))


def retry_delay(attempts: int) -> timedelta | None:
    """When to try a scan again after ``attempts`` failed ones; None once SCAN_MAX_ATTEMPTS is reached."""
    if attempts >= app_settings.SCAN_MAX_ATTEMPTS:
        return None
    return min(app_settings.SCAN_RETRY_DELAY * (2 ** min(max(0, attempts - 1), 20)), MAX_RETRY_DELAY)


def process(
    blob_id: UUID | str,
    *,
    stages: Sequence[str] = STAGES,
    force: bool = False,
) -> ProcessOutcome:
    """Run the stages still due for one blob (all of ``stages`` again with ``force``).

    ``force`` scans a blob already judged again (new signatures) and
    re-analyzes one already analyzed; without it, a call for a blob with
    nothing left to do reads nothing.
    """
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise ValueError(f"Unknown stage(s) {sorted(unknown)}; the stages are {list(STAGES)}.")
    outcome = ProcessOutcome(blob_id=str(blob_id))
    blob = Blob.objects.filter(pk=blob_id).first()
    if blob is None:
        outcome.found = False
        return outcome
    try:
        if "scan" in stages:
            _scan_stage(blob, force=force, outcome=outcome)
        if "analyze" in stages:
            _analyze_stage(blob, force=force, outcome=outcome)
        if "variants" in stages:
            _variants_stage(blob, outcome=outcome)
    except (Blob.DoesNotExist, ObjectMissing):
        # Purged while we read it (its row, then its bytes, went): nothing to do, not an error. Active
        # Storage's AnalyzeJob reports FileNotFoundError for exactly this, over and over.
        if Blob.objects.filter(pk=blob.pk).exists():
            raise
        outcome.found, outcome.retry_in = False, None
        return outcome
    outcome.scan, outcome.analysis = blob.scan_state, blob.analysis_state
    return outcome


# -- stage 1: the malware scan ---------------------------------------------------------


def _scan_stage(blob: Blob, *, force: bool, outcome: ProcessOutcome) -> None:
    scanner: Scanner | None = app_settings.SCANNER
    if scanner is None:
        # A process without the scanner (a worker missing its setting): a blob waiting for the scanner keeps
        # waiting, still not served, and listed by unfinished(). Releasing it here would serve it unscanned.
        return
    if not force and blob.scan_state not in (*SCAN_DUE, ScanState.NOT_SCANNED):
        return  # judged already (a blob stored before the scanner came, not_scanned, is scanned now)
    outcome.ran.append("scan")
    try:
        # Its storage, or a copy elsewhere where that fails (a migration may have moved it meanwhile).
        with open_row(blob) as stream:
            result = scanner.scan(stream.chunks())
        if result.size != blob.size:
            raise ScanError(f"The scanner read {result.size} bytes of the {blob.size} the blob holds.")
    except ObjectMissing:
        raise  # purged meanwhile (process() tells), or lost: verify_attachments' business, not the scanner's
    except Exception as exc:
        # No verdict, whatever failed: the scanner (ScanError), the storage mid-read (StorageError, a raw
        # OSError of a disk, a client library's own read error). Recorded as failed and retried; never clean.
        logger.warning("Could not scan blob %s: %s", blob.pk, exc)
        _scan_failed(blob, exc, force=force, outcome=outcome)
        return
    now = timezone.now()
    verdict = {
        "scanned_by": result.scanner[:255],
        "scanned_at": now,
        "scan_error_code": "",
        "scan_error": "",
        "scan_attempts": 0,
    }
    undecided = Q() if force else Q(scan_state__in=(*SCAN_DUE, ScanState.NOT_SCANNED))
    if result.clean:
        _settle(blob, undecided, scan_state=ScanState.CLEAN, scan_signature="", **verdict)
        return
    signature = (result.signature or "")[:255]
    # Only the run that makes the blob infected announces it, however many scan it at once.
    # An infected file is never parsed (again): its analysis ends here. Values read before a forced re-scan
    # found it (new signatures) stay in metadata, as facts about the bytes; nothing serves them.
    newly = _settle(
        blob,
        undecided & ~Q(scan_state=ScanState.INFECTED),
        scan_state=ScanState.INFECTED,
        scan_signature=signature,
        analysis_state=AnalysisState.NOT_ANALYZED,
        **verdict,
    )
    if newly:
        logger.warning("Blob %s is infected (%s); it is quarantined.", blob.pk, signature)
        transaction.on_commit(lambda: _announce_infected(blob, signature))
    elif force:
        # Infected already: a forced re-scan (new signatures) records its own verdict, announced once before.
        _settle(blob, Q(scan_state=ScanState.INFECTED), scan_signature=signature, **verdict)


def _scan_failed(blob: Blob, exc: Exception, *, force: bool, outcome: ProcessOutcome) -> None:
    """Record a scan that could not run; a blob already judged keeps its verdict, and no error (a forced re-scan)."""
    code = exc.code if isinstance(exc, (ScanError, StorageError)) else "storage_unavailable"
    final = isinstance(exc, ScanTooLarge)  # trying again cannot help
    details = {"scan_error_code": code[:64], "scan_error": str(exc)}
    # Still undecided: now "failed", retried. Stored before the scanner came (not_scanned): stays so, the
    # error noted -- a backlog run with the scanner down must not stop serving what was served.
    Blob.objects.filter(pk=blob.pk, scan_state__in=SCAN_DUE).update(
        scan_state=ScanState.FAILED,
        scan_attempts=app_settings.SCAN_MAX_ATTEMPTS if final else F("scan_attempts") + 1,
        updated_at=timezone.now(),
        **details,
    )
    Blob.objects.filter(pk=blob.pk, scan_state=ScanState.NOT_SCANNED).update(updated_at=timezone.now(), **details)
    blob.refresh_from_db()
    if blob.scan_state == ScanState.FAILED:
        delay = retry_delay(blob.scan_attempts)
        outcome.retry_in = None if delay is None else delay.total_seconds()


def _settle(blob: Blob, condition: Q, **values: Any) -> int:
    """Write ``values`` if the blob still meets ``condition``; refresh it; the rows written (0 or 1)."""
    written = Blob.objects.filter(condition, pk=blob.pk).update(updated_at=timezone.now(), **values)
    blob.refresh_from_db()
    return written


def _announce_infected(blob: Blob, signature: str) -> None:
    for receiver, result in blob_infected.send_robust(sender=Blob, blob=blob, signature=signature):
        if isinstance(result, Exception):
            logger.error("A blob_infected receiver (%r) failed for blob %s", receiver, blob.pk, exc_info=result)


# -- stage 2: the analyzers -------------------------------------------------------------


def _analyze_stage(blob: Blob, *, force: bool, outcome: ProcessOutcome) -> None:
    if blob.scan_state not in parseable_scans():
        return  # never parse a file the scanner has not passed; the scan's completion runs this stage
    # Due: pending, or never analyzed (stored before an analyzer for its type was configured: the backlog).
    never = blob.analysis_state == AnalysisState.NOT_ANALYZED and blob.analyzed_at is None
    if not (force or blob.analysis_state == AnalysisState.PENDING or never):
        return
    analyzers = analyzers_for(blob.content_type)
    if not analyzers:
        if blob.analysis_state != AnalysisState.NOT_ANALYZED:
            _settle(blob, Q(), analysis_state=AnalysisState.NOT_ANALYZED)
        return
    outcome.ran.append("analyze")
    store, identifiers = locate(blob)
    results: dict[str, dict[str, Any]] = {}
    errors: dict[str, dict[str, str]] = {}
    for analyzer in analyzers:
        stream = SeekableReader.buffered(store, identifiers, blob.size)
        try:
            results[analyzer.name] = _clean(analyzer.name, analyzer.analyze(stream))
        except AnalysisError as exc:
            errors[analyzer.name] = {"code": exc.code, "detail": str(exc)}
        except AnalysisUnavailable as exc:  # a library gone since analyzers_for() asked: skipped, as if absent
            logger.warning("Analyzer %r skipped for blob %s: %s", analyzer, blob.pk, exc)
        finally:
            stream.close()
        # Any other error (the storage failing) propagates: the blob stays pending, the next run retries.
    _merge(blob, results, errors, ran=[analyzer.name for analyzer in analyzers])


def _merge(
    blob: Blob, results: dict[str, dict[str, Any]], errors: dict[str, dict[str, str]], *, ran: Iterable[str]
) -> None:
    """Record the analyzers' values and errors under the row's lock, replacing only the keys of those that ran."""
    ran = set(ran)
    configured = {analyzer.name for analyzer in app_settings.ANALYZERS}
    with transaction.atomic():
        locked = lock_blob(blob.pk)
        if locked is None:
            return
        if locked.scan_state not in parseable_scans():
            # Found infected (or put back to be scanned) while we read it: its analysis ended there.
            blob.refresh_from_db()
            return
        metadata = {key: value for key, value in locked.metadata.items() if key.split(".", 1)[0] not in ran}
        for values in results.values():
            metadata.update(values)
        recorded = {name: error for name, error in locked.analysis_errors.items() if name not in ran}
        recorded.update(errors)
        locked.metadata = metadata
        locked.analysis_errors = recorded
        failed = any(name in configured for name in recorded)
        locked.analysis_state = str(AnalysisState.FAILED if failed else AnalysisState.ANALYZED)
        locked.analyzed_at = timezone.now()
        locked.save(update_fields=["metadata", "analysis_errors", "analysis_state", "analyzed_at", "updated_at"])
    blob.refresh_from_db()


def _clean(name: str, values: Any) -> dict[str, Any]:
    """An analyzer's result as the database can always store it: its own keys, JSON scalars, no NUL.

    A value outside that (a NUL from a file's header, which PostgreSQL's JSON
    refuses; a non-finite float; a list) would fail the merge for good and
    leave the blob pending forever; it is recorded as None (not known).
    """
    clean: dict[str, Any] = {}
    for key, value in dict(values).items():
        if not isinstance(key, str) or not key.startswith(f"{name}.") or "\x00" in key:
            logger.warning("Analyzer %r returned the key %r, outside its namespace; dropped.", name, key)
            continue
        if isinstance(value, str):
            value = value.replace("\x00", "") or None
        elif isinstance(value, float) and not math.isfinite(value):
            value = None
        elif value is not None and not isinstance(value, (bool, int, float)):
            value = None
        clean[key] = value
    return clean


def lock_blob(pk: Any) -> Blob | None:
    """Lock the blob's row for this transaction and read it; None when it is gone.

    The lock is taken by a write first (as the direct uploads' tickets are):
    SQLite ignores ``FOR UPDATE``, and a transaction that starts by writing
    takes its write lock at once instead of failing to upgrade a read.
    """
    if not Blob.objects.filter(pk=pk).update(analysis_state=F("analysis_state")):
        return None
    return Blob.objects.select_for_update().filter(pk=pk).first()


# -- stage 3: the eager variants --------------------------------------------------------


def _variants_stage(blob: Blob, *, outcome: ProcessOutcome) -> None:
    from . import variants  # the variants' service asks this module for the blob's lock

    if blob.scan_state not in parseable_scans():
        return  # never render a file the scanner has not passed; the scan's completion runs this stage
    # Never forced: a re-scan or re-analysis (--all) has no reason to redraw the pictures;
    # process_attachments --variants NAME --all does that.
    made = variants.make_eager(blob)
    if made:
        outcome.ran.append("variants")
        outcome.variants = {result.name: result.state for result in made}


# -- what is due: the selections of manage.py process_attachments ------------------------


def due(stages: Sequence[str] = STAGES, *, backlog: bool = False) -> QuerySet[Blob]:
    """Blobs on which :func:`process` with ``stages`` (not forced) has work to do.

    A scan is due when it is pending or failed; with ``backlog`` and a scanner
    configured, also for blobs stored before the scanner came (``not_scanned``).
    An analysis is due when it is pending; with ``backlog``, also for blobs
    never analyzed whose type a configured analyzer reads (stored before it
    came), never for an infected one. Asked for alone, an analysis is due only
    once the scan passed (the analyzers never read a file the scanner has yet
    to pass). ``due()`` is :func:`unfinished`. The variants stage selects
    nothing here: ``process_attachments --variants`` picks its blobs itself.
    """
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise ValueError(f"Unknown stage(s) {sorted(unknown)}; the stages are {list(STAGES)}.")
    conditions = []
    if "scan" in stages:
        scan_due = [*SCAN_DUE]
        if backlog and app_settings.SCANNER is not None:
            scan_due.append(ScanState.NOT_SCANNED)
        conditions.append(Q(scan_state__in=scan_due))
    if "analyze" in stages:
        analysis_due = Q(analysis_state=AnalysisState.PENDING)
        if backlog:
            runnable = [analyzer for analyzer in app_settings.ANALYZERS if analyzer.unavailable_reason() is None]
            types = sorted({t for analyzer in runnable for t in analyzer.content_types})
            never = Q(analysis_state=AnalysisState.NOT_ANALYZED, analyzed_at__isnull=True, content_type__in=types)
            analysis_due = (analysis_due | never) & ~Q(scan_state=ScanState.INFECTED)
        conditions.append(analysis_due if "scan" in stages else analysis_due & Q(scan_state__in=parseable_scans()))
    if not conditions:
        return Blob.objects.none()
    condition = conditions[0]
    for other in conditions[1:]:
        condition |= other
    return Blob.objects.filter(condition)
