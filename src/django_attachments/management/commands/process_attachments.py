"""``manage.py process_attachments``: run the processing pipeline (scan, analyze, variants) over blobs stored.

What a dead worker left, the backlog of a scanner or an analyzer configured
after the files came, a re-scan with new signatures or a re-analysis after an
analyzer's upgrade::

    manage.py process_attachments                    # what is due (pending, failed): what workers left,
                                                     # multipart uploads whose verification was lost,
                                                     # and the mirror copies missing (MIRRORS)
    manage.py process_attachments --scan             # the scan only: what is due, and the blobs stored
                                                     # before the scanner came (not scanned)
    manage.py process_attachments --analyze          # the analyzers only: what is due, and the blobs never
                                                     # analyzed that an analyzer configured since reads
    manage.py process_attachments --all --scan       # re-scan every blob (new signatures)
    manage.py process_attachments --all --analyze    # re-analyze every blob (an analyzer upgraded)
    manage.py process_attachments --blob 0f8c... --blob 5d1e...   # those blobs, every stage again
    manage.py process_attachments --variants thumb   # make the "thumb" variant of every blob that has none
    manage.py process_attachments --all --variants thumb   # make it again for every blob (a renderer fixed)
    manage.py process_attachments --enqueue          # hand the blobs to the task workers instead
    manage.py process_attachments --json             # one JSON line, for cron and monitoring

By default the blobs are processed in this process, one after the other, so
the operator sees each verdict; ``--enqueue`` hands them to the task backend
(``TASK_BACKEND``, ``TASK_QUEUE``) for workers. Blobs are read in primary-key
batches (no cursor or transaction held across the run) and each one is its
own unit, idempotent and safe beside workers and other runs
(:func:`~django_attachments.services.processing.process`). Ctrl-C stops after
the current blob, with the summary; what is done stays done, and a second run
finishes the rest (an interrupted ``--all`` run resumes with ``--after``).

With ``MIRRORS`` set, the default run (``--pending``, no stage named) then
makes the mirror copies that are missing: those whose last attempt failed
and whose retry time has come, and those of blobs and variants older than a
minute that no task copied (:func:`~django_attachments.services.mirroring.due`);
each copy verified before it is recorded, as the task does.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser, DjangoHelpFormatter
from django.db import DatabaseError
from django.db.models import QuerySet
from django.template.defaultfilters import filesizeformat

from ...conf import app_settings
from ...exceptions import NoPreview, VariantNotFound
from ...models import AnalysisState, Blob, DirectUpload, ScanState
from ...registry import attachment_registry
from ...services import migrating, mirroring, multipart, processing, variants
from ..progress import Progress
from .purge_orphan_attachments import positive

logger = logging.getLogger(__name__)

#: Everything due got done (a malformed file recorded as an analysis failure is done).
EXIT_OK = 0
#: Some blob is not done: a scan could not run (the scanner down), a blob failed with an error, a mirror
#: copy could not be made, or the task backend refused one. Those blobs stay due; the next run retries them.
EXIT_INCOMPLETE = 1
#: Wrong arguments, an unknown blob id, or wrong settings (SCANNER, TASK_BACKEND).
EXIT_USAGE = 2
#: Interrupted (Ctrl-C), after the summary of what was done.
EXIT_INTERRUPTED = 130

EPILOG = f"""\
selection: --pending (the default), --all or --blob; --limit caps any of them.
stages: --scan and/or --analyze (with the eager variants, all by default). A
  stage named also takes its backlog into --pending: --scan the blobs stored
  before the scanner came (not scanned), --analyze the blobs never analyzed
  whose type an analyzer configured since reads. With neither named, no
  backlog is taken: a cron run does not start on one by surprise.
variants: --variants NAME (repeatable) makes those variants alone, of every
  blob a renderer reads that is linked to an owner type declaring NAME:
  with --pending (the default) where not made yet, with --all or --blob
  again (forced; a refused file is tried again too).
mirrors: with MIRRORS set, the default run (--pending, no stage named) also
  makes the mirror copies missing: failed ones whose retry time has come,
  and those of blobs and variants older than a minute; --limit caps them too.

exit status:
  {EXIT_OK}    everything due got done (a file an analyzer could not read is
       done: its error is recorded on the blob)
  {EXIT_INCOMPLETE}    some scans could not run (scanner down, the file over its limit), a
       blob failed with an error, a mirror copy could not be made, or the
       task backend refused one; those blobs stay due and the next run
       retries them
  {EXIT_USAGE}    wrong arguments, an unknown blob id or wrong settings
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C) after the current blob; run again to finish
"""

#: The keys of the summary's counts, in the order the JSON summary lists them.
COUNTS = (
    "blobs clean infected failed analyzed analysis_failed made existed refused busy gone nothing_to_do errors "
    "enqueued not_enqueued"
).split()
#: The mirror copies' counts, listed after those (and only) when the run made the copies missing in MIRRORS.
MIRROR_COUNTS = "mirror_blobs mirrored mirrored_bytes mirror_failed mirror_enqueued".split()

#: What the summary reads of each blob after its run.
RESULT_FIELDS = (
    *("scan_state", "scan_signature", "scan_error_code", "scan_attempts"),
    *("scanned_at", "analysis_state", "analysis_errors"),
)


def blob_id(text: str) -> str:
    try:
        return str(uuid.UUID(text.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a blob id (a UUID)") from None


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, DjangoHelpFormatter):
    """Django's order of options, with the description and the exit statuses kept as written."""


@dataclass
class Summary:
    """What one run did: the counts, the blobs that need a look, whether it finished."""

    mode: str
    selection: str
    stages: list[str]
    forced: bool
    backend: str | None = None
    queue: str | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys([*COUNTS, *MIRROR_COUNTS], 0))
    #: {"id", "signature"}
    infected: list[dict[str, Any]] = field(default_factory=list)
    #: {"id", "code", "attempts", "state"}: scans that could not run; the state the blob kept.
    failed: list[dict[str, Any]] = field(default_factory=list)
    #: {"id", "analyzers": {name: code}}: files an analyzer could not read (recorded; done).
    analysis_failed: list[dict[str, Any]] = field(default_factory=list)
    #: {"id", "variant", "code"}: variants the renderer refused to make (recorded; done).
    refused: list[dict[str, Any]] = field(default_factory=list)
    #: The variants named (--variants), if any.
    variants: list[str] = field(default_factory=list)
    #: {"id", "error"}: blobs whose processing raised (the storage failing); left as they were.
    errors: list[dict[str, Any]] = field(default_factory=list)
    #: Blobs the task backend refused (--enqueue); they stay due.
    not_enqueued: list[str] = field(default_factory=list)
    #: {"id", "status"}: multipart direct uploads whose verification a lost task left (pending selection only).
    uploads: list[dict[str, Any]] = field(default_factory=list)
    #: The mirrors whose missing copies the run made (MIRRORS; empty when it made none: not asked, or none set);
    #: the JSON summary has the mirror counts, "mirrors" and "mirror_failed" only when it is not empty.
    mirrors: list[str] = field(default_factory=list)
    #: {"id", "kind", "blob", "storage", "target", "code", "error"}: mirror copies that failed (recorded as
    #: failed, retried after their delay).
    mirror_failed: list[dict[str, Any]] = field(default_factory=list)
    #: The last blob handled: ``--after`` it resumes the run.
    last_blob: str | None = None
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not (self.failed or self.errors or self.mirror_failed or self.not_enqueued or self.interrupted)

    def progress(self) -> str:
        counts = self.counts
        if self.mode == "enqueue":
            return f"{counts['enqueued']} enqueued, {counts['not_enqueued']} refused"
        if self.variants:
            return f"{counts['made']} made, {counts['existed']} existed, {counts['refused']} refused"
        return f"{counts['clean']} clean, {counts['infected']} infected, {counts['failed']} failed"

    def as_dict(self) -> dict[str, Any]:
        data = {
            "mode": self.mode,
            "selection": self.selection,
            "stages": self.stages,
            "forced": self.forced,
            "counts": self.counts if self.mirrors else {key: self.counts[key] for key in COUNTS},
            "infected": self.infected,
            "failed": self.failed,
            "analysis_failed": self.analysis_failed,
            "refused": self.refused,
            "uploads": self.uploads,
            "variants": self.variants,
            "errors": self.errors,
            "not_enqueued": self.not_enqueued,
            "last_blob": self.last_blob,
            "interrupted": self.interrupted,
            "ok": self.ok,
        }
        if self.mode == "enqueue":
            data.update(backend=self.backend, queue=self.queue)
        if self.mirrors:
            data.update(mirrors=self.mirrors, mirror_failed=self.mirror_failed)
        return data


class Command(BaseCommand):
    help = (
        "Run the processing pipeline (malware scan, metadata analyzers) over stored blobs: what is due\n"
        "(left by a dead worker or a scanner that was down), the backlog of a scanner or an analyzer\n"
        "configured later (--scan, --analyze), every blob again (--all: new signatures, an analyzer\n"
        "upgraded) or the blobs named (--blob). Inline in this process by default, or handed to the\n"
        "task workers with --enqueue. Safe beside workers and other runs; Ctrl-C stops after the\n"
        "current blob, and a second run finishes the rest."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        # No abbreviations: "--force" would otherwise be taken for Django's --force-color, silently.
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("epilog", EPILOG)
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group()
        which.add_argument(
            "--pending",
            action="store_true",
            help="Blobs with a stage due: a scan pending or failed, an analysis pending (the default); "
            "with --scan or --analyze named, that stage's backlog too.",
        )
        which.add_argument(
            "--all",
            action="store_true",
            help="Every blob, forced: scanned again (new signatures) and analyzed again (an analyzer upgraded).",
        )
        which.add_argument(
            "--blob",
            action="append",
            type=blob_id,
            metavar="ID",
            help="This blob, forced (repeatable). An unknown id is an error, before anything runs.",
        )
        parser.add_argument("--scan", action="store_true", help="Only the malware scan (both stages by default).")
        parser.add_argument("--analyze", action="store_true", help="Only the analyzers (both stages by default).")
        parser.add_argument(
            "--variants",
            action="append",
            metavar="NAME",
            default=[],
            help="Only make the variant NAME (repeatable): where it is not made yet, or again with --all/--blob.",
        )
        parser.add_argument(
            "--enqueue",
            action="store_true",
            help="Hand each blob to the task backend (TASK_BACKEND, TASK_QUEUE) for workers, instead of "
            "processing it here.",
        )
        parser.add_argument("--limit", type=positive, metavar="N", help="Stop after this many blobs.")
        parser.add_argument(
            "--after",
            type=blob_id,
            metavar="ID",
            help="Start after this blob id (blobs go in id order): resumes an interrupted run, whose summary "
            "names its last blob.",
        )
        parser.add_argument(
            "--batch-size", type=positive, default=500, metavar="N", help="Blob ids per database batch (500)."
        )
        parser.add_argument(
            "--json",
            action="store_true",
            help="Print the summary as one JSON object on one line (per run), and nothing else on stdout.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity = options["verbosity"]
        self.json = options["json"]
        names = sorted(set(options["variants"]))
        if names and (options["scan"] or options["analyze"]):
            raise CommandError("--variants runs alone: not with --scan or --analyze.", returncode=EXIT_USAGE)
        stages = ["variants"] if names else [stage for stage in ("scan", "analyze") if options[stage]]
        stages = stages or list(processing.STAGES)
        scanner = self.check_settings(enqueue=options["enqueue"])
        if names:
            self.check_variant_names(names)
        if options["scan"] and scanner is None:
            raise CommandError(
                "--scan: no scanner is configured (DJANGO_ATTACHMENTS['SCANNER']); nothing can scan.",
                returncode=EXIT_USAGE,
            )
        if options["blob"]:
            selection, forced = "blobs", True
            ids = sorted(set(options["blob"]))
            known = {str(pk) for pk in Blob.objects.filter(pk__in=ids).values_list("pk", flat=True)}
            unknown = [pk for pk in ids if pk not in known]
            if unknown:
                raise CommandError(f"No blob with id {', '.join(unknown)}.", returncode=EXIT_USAGE)
            queryset = Blob.objects.filter(pk__in=ids)
        elif options["all"]:
            selection, forced = "all", True
            queryset = variants.renderable() if names else Blob.objects.all()
        elif names:
            selection, forced = "pending", False
            queryset = variants.renderable()
        else:
            selection, forced = "pending", False
            # Naming a stage takes its backlog too (a scanner or an analyzer configured after the files came).
            queryset = processing.due(stages, backlog=options["scan"] or options["analyze"])
        if options["after"]:
            queryset = queryset.filter(pk__gt=options["after"])
        # The default run finishes everything due: the mirror copies missing too. A run naming a stage or a
        # variant, or blobs, does that alone.
        mirrors = (
            selection == "pending" and not names and not (options["scan"] or options["analyze"]) and mirroring.enabled()
        )

        summary = Summary(
            mode="enqueue" if options["enqueue"] else "inline",
            selection=selection,
            stages=stages,
            forced=forced,
            backend=app_settings.TASK_BACKEND if options["enqueue"] else None,
            queue=app_settings.TASK_QUEUE if options["enqueue"] else None,
            variants=names,
        )
        on_terminal = self.stderr.isatty() and not self.json and self.verbosity >= 1
        total = None
        if on_terminal:  # a COUNT over the selection, for the bar only
            total = queryset.count()
            total = total if options["limit"] is None else min(total, options["limit"])
        progress = Progress(self.stderr, total=total, enabled=on_terminal, unit="blobs")
        self.stop_requested = False
        progress.update(0, force=True)  # at once: the first blob may take a while
        try:
            with self.stop_after_current_blob():
                if selection == "pending" and not names:
                    self.finish_uploads(summary, enqueue=options["enqueue"])
                for pk in self.blob_ids(queryset, limit=options["limit"], batch_size=options["batch_size"]):
                    if names:
                        self.variants_one(pk, names, forced, summary, enqueue=options["enqueue"])
                    elif options["enqueue"]:
                        self.enqueue_one(pk, stages, forced, summary)
                    else:
                        self.process_one(pk, stages, forced, summary)
                    # Counted once handled: a blob cut off by a second Ctrl-C is not, and --after does not skip it.
                    summary.counts["blobs"] += 1
                    summary.last_blob = str(pk)
                    progress.update(summary.counts["blobs"], summary.progress())
                    if self.stop_requested:
                        summary.interrupted = True
                        break
                progress.close()
                if mirrors and not summary.interrupted:
                    self.mirror_missing(
                        summary,
                        enqueue=options["enqueue"],
                        limit=options["limit"],
                        batch_size=options["batch_size"],
                        on_terminal=on_terminal,
                    )
        except KeyboardInterrupt:  # a second Ctrl-C: the blob in hand is left as it was, due
            summary.interrupted = True
        except DatabaseError as exc:
            progress.close()
            raise CommandError(
                f"The database failed after {summary.counts['blobs']} blob(s): {exc}. What is done stays done; "
                "run the command again to finish."
            ) from exc
        progress.close()
        self.report(summary)
        self.exit_status(summary)

    # -- the run -------------------------------------------------------------------------

    def check_settings(self, *, enqueue: bool) -> Any:
        """The configured scanner (or None); a wrong setting the pipeline reads is a CommandError."""
        try:
            scanner = app_settings.SCANNER
            for name in (
                *("ANALYZERS", "SCAN_MAX_ATTEMPTS", "SCAN_RETRY_DELAY", "TASK_BACKEND", "TASK_QUEUE"),
                *("VARIANTS", "RENDERERS", "MIRRORS"),
            ):
                getattr(app_settings, name)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc), returncode=EXIT_USAGE) from exc
        if enqueue:
            from ... import tasks

            try:
                configured = tasks.process_blob.using(
                    backend=app_settings.TASK_BACKEND, queue_name=app_settings.TASK_QUEUE
                )
                configured.get_backend().validate_task(configured)
            except Exception as exc:  # the backend alias unknown, its class missing, the queue refused
                raise CommandError(
                    f"--enqueue: the task backend {app_settings.TASK_BACKEND!r} (DJANGO_ATTACHMENTS['TASK_BACKEND'], "
                    f"settings.TASKS) cannot take the task on queue {app_settings.TASK_QUEUE!r}: {exc}",
                    returncode=EXIT_USAGE,
                ) from exc
        return scanner

    @staticmethod
    def check_variant_names(names: list[str]) -> None:
        """Every name is declared somewhere (globally, or by a registered owner type)."""
        known = set(app_settings.VARIANTS)
        for spec in attachment_registry:
            known |= {name for name, value in (spec.variants or {}).items() if value is not None}
        unknown = [name for name in names if name not in known]
        if unknown:
            raise CommandError(
                f"--variants: no variant named {', '.join(unknown)} is declared (VARIANTS, or an owner type's "
                f"variants); declared: {', '.join(sorted(known)) or 'none'}.",
                returncode=EXIT_USAGE,
            )

    @staticmethod
    def blob_ids(queryset: QuerySet[Blob], *, limit: int | None, batch_size: int) -> Iterator[Any]:
        """The selection's ids in primary-key order, a batch per query: no cursor held across the run.

        Paging by id, not by offset, also steps past the blobs whose stage fails again (a scan
        still failed stays due): each is tried once per run.
        """
        ids = queryset.order_by("pk").values_list("pk", flat=True)
        handed, last = 0, None
        while limit is None or handed < limit:
            page = ids if last is None else ids.filter(pk__gt=last)
            batch = list(page[: batch_size if limit is None else min(batch_size, limit - handed)])
            if not batch:
                return
            for pk in batch:
                yield pk
                handed += 1
            last = batch[-1]

    def finish_uploads(self, summary: Summary, *, enqueue: bool) -> None:
        """Verify the multipart direct uploads whose task was lost (verifying, unclaimed past the lease)."""
        from ... import tasks

        stalled = DirectUpload.objects.filter(status=DirectUpload.VERIFYING).order_by("created_at")
        for upload in stalled.iterator():
            if not multipart.is_stalled(upload):
                continue
            if enqueue:
                queued = tasks.enqueue_upload_verification(DirectUpload, upload=upload)
                status = "enqueued" if queued is not None else "not_enqueued"
            else:
                status = multipart.verify_upload(upload.pk).status
            summary.uploads.append({"id": str(upload.pk), "status": status})
            self.line(f"upload {upload.pk}: {status}")

    def mirror_missing(
        self, summary: Summary, *, enqueue: bool, limit: int | None, batch_size: int, on_terminal: bool
    ) -> None:
        """Make (or enqueue) the mirror copies due: failed ones whose retry time has come, and those no task made.

        A blob is one unit (:func:`~django_attachments.services.migrating.mirror_blob`: its copies and its
        variants', each verified, then recorded under its row lock), safe beside the tasks and other runs.
        """
        from ... import tasks

        summary.mirrors = list(app_settings.MIRRORS)
        queryset = mirroring.due()
        total = None
        if on_terminal:
            total = queryset.count() if limit is None else min(queryset.count(), limit)
        progress = Progress(self.stderr, total=total, enabled=on_terminal, unit="blobs to mirror")
        counts = summary.counts
        try:
            progress.update(0, force=True)
            for pk in self.blob_ids(queryset, limit=limit, batch_size=batch_size):
                if enqueue:
                    queued = tasks.enqueue_mirror(pk) is not None
                    counts["mirror_enqueued" if queued else "not_enqueued"] += 1
                    if not queued:
                        summary.not_enqueued.append(str(pk))
                    self.line(f"{pk}: mirror copies {'enqueued' if queued else 'not enqueued'}")
                else:
                    self.mirror_one(pk, summary)
                counts["mirror_blobs"] += 1
                progress.update(
                    counts["mirror_blobs"], f"{counts['mirrored']} copied, {counts['mirror_failed']} failed"
                )
                if self.stop_requested:
                    summary.interrupted = True
                    return
        finally:
            progress.close()

    def mirror_one(self, pk: Any, summary: Summary) -> None:
        try:
            result = migrating.mirror_blob(pk)
        except DatabaseError:
            raise
        except Exception as exc:  # not a storage's refusal (those are recorded): left due, for the next run
            logger.exception("Could not mirror blob %s", pk)
            summary.counts["errors"] += 1
            summary.errors.append({"id": str(pk), "error": f"mirror: {type(exc).__name__}: {exc}"})
            self.line(f"{pk}: mirror error: {type(exc).__name__}: {exc}")
            return
        summary.counts["mirrored"] += result.copied
        summary.counts["mirrored_bytes"] += result.bytes
        summary.counts["mirror_failed"] += len(result.failed)
        summary.mirror_failed += result.failed
        said = [f"{result.copied} mirror cop{'y' if result.copied == 1 else 'ies'} made"]
        said += [f"{item['kind']} {item['id']} to {item['target']}: {item['code']}" for item in result.failed]
        self.line(f"{pk}: {', '.join(said)}")

    def process_one(self, pk: Any, stages: list[str], forced: bool, summary: Summary) -> None:
        # A forced re-scan that cannot run leaves a clean blob as it was: what it was tells the two apart.
        before = None
        if forced and "scan" in stages:
            before = Blob.objects.filter(pk=pk).values_list("scan_state", "scanned_at").first()
        try:
            outcome = processing.process(pk, stages=stages, force=forced)
        except DatabaseError:
            raise
        except Exception as exc:  # the storage failing mid-analysis: left due, for the next run
            logger.exception("Could not process blob %s", pk)
            summary.counts["errors"] += 1
            summary.errors.append({"id": str(pk), "error": f"{type(exc).__name__}: {exc}"})
            self.line(f"{pk}: error: {type(exc).__name__}: {exc}")
            return
        row = Blob.objects.filter(pk=pk).values(*RESULT_FIELDS).first() if outcome.found else None
        if row is None:
            summary.counts["gone"] += 1
            self.line(f"{pk}: gone")
            return
        said = [self.count_scan(pk, outcome, row, before, summary), self.count_analysis(pk, outcome, row, summary)]
        if "variants" in outcome.ran:
            made = [name for name, state in sorted(outcome.variants.items()) if state == "made"]
            summary.counts["made"] += len(made)
            if made:
                self.mirror_new_variant(pk)
            said.append(f"variants made: {', '.join(made)}" if made else "")
        said = [part for part in said if part]
        if not said:
            summary.counts["nothing_to_do"] += 1
        self.line(f"{pk}: {', '.join(said) or 'nothing to do'}")

    @staticmethod
    def count_scan(
        pk: Any, outcome: processing.ProcessOutcome, row: dict[str, Any], before: tuple | None, summary: Summary
    ) -> str:
        if "scan" not in outcome.ran:
            return ""
        state, code = row["scan_state"], row["scan_error_code"]
        # A scan that could not run leaves a blob undecided (failed), not scanned (the backlog), or -- a forced
        # re-scan -- with the verdict it had and its scanned_at; a verdict, this run's or a concurrent one's,
        # is written with a new scanned_at (an infected blob's confirmed verdict too).
        kept = before is not None and (before[0], before[1]) == (state, row["scanned_at"])
        could_not = state in (ScanState.FAILED, ScanState.NOT_SCANNED) or kept
        if could_not:
            summary.counts["failed"] += 1
            # A forced re-scan that could not run may leave no code on a judged blob: the scanner's default one.
            summary.failed.append(
                {"id": str(pk), "code": code or "scan_unavailable", "attempts": row["scan_attempts"], "state": state}
            )
            return f"scan failed ({code}; still {state})"
        if state == ScanState.INFECTED:
            summary.counts["infected"] += 1
            summary.infected.append({"id": str(pk), "signature": row["scan_signature"]})
            return f"infected ({row['scan_signature']})"
        summary.counts["clean"] += 1
        return "clean"

    @staticmethod
    def count_analysis(pk: Any, outcome: processing.ProcessOutcome, row: dict[str, Any], summary: Summary) -> str:
        if "analyze" not in outcome.ran:
            return ""
        if row["analysis_state"] == AnalysisState.ANALYZED:
            summary.counts["analyzed"] += 1
            return "analyzed"
        if row["analysis_state"] == AnalysisState.FAILED:
            analyzers = {name: error.get("code", "") for name, error in sorted(row["analysis_errors"].items())}
            summary.counts["analysis_failed"] += 1
            summary.analysis_failed.append({"id": str(pk), "analyzers": analyzers})
            return f"analysis failed ({', '.join(f'{name}: {code}' for name, code in analyzers.items())})"
        return ""

    def variants_one(self, pk: Any, names: list[str], forced: bool, summary: Summary, *, enqueue: bool) -> None:
        """Make (or enqueue) the named variants of one blob, once per owner type's spec of each name."""
        blob = Blob.objects.filter(pk=pk).first()
        if blob is None:
            summary.counts["gone"] += 1
            self.line(f"{pk}: gone")
            return
        owner_types = sorted(set(blob.attachments.values_list("owner_type", flat=True)))
        said: list[str] = []
        seen: set[str] = set()
        for name in names:
            for owner_type in owner_types:
                try:
                    declared = variants.resolve(blob, name, owner_type=owner_type)
                except (VariantNotFound, NoPreview):
                    continue  # not declared there; or no renderer reads the type (not selected: a type gone since)
                if declared.digest in seen:
                    continue
                seen.add(declared.digest)
                if enqueue:
                    from ... import tasks

                    result = tasks.enqueue_variant(pk, name, owner_type=owner_type, force=forced)
                    key = "enqueued" if result is not None else "not_enqueued"
                    summary.counts[key] += 1
                    if result is None:
                        summary.not_enqueued.append(str(pk))
                    said.append(f"{name} {key.replace('_', ' ')}")
                    continue
                try:
                    outcome = variants.make_declared(blob, declared, force=forced)
                except DatabaseError:
                    raise
                except Exception as exc:  # the storage failing: left for the next run
                    logger.exception("Could not make the %r variant of blob %s", name, pk)
                    summary.counts["errors"] += 1
                    summary.errors.append({"id": str(pk), "error": f"{name}: {type(exc).__name__}: {exc}"})
                    said.append(f"{name} error: {type(exc).__name__}: {exc}")
                    continue
                said.append(self.count_variant(pk, outcome, summary))
                if outcome.state == "made":
                    self.mirror_new_variant(pk)
        if not said:
            summary.counts["nothing_to_do"] += 1
        self.line(f"{pk}: {', '.join(said) or 'nothing to do'}")

    @staticmethod
    def mirror_new_variant(pk: Any) -> None:
        """A variant made here is copied to the mirrors as one a worker made: by a task (inline or not)."""
        from ... import tasks

        tasks.mirror_new_variant(pk)

    @staticmethod
    def count_variant(pk: Any, outcome: variants.MakeOutcome, summary: Summary) -> str:
        key = {"made": "made", "exists": "existed", "failed": "refused", "busy": "busy"}.get(outcome.state)
        if key is None:  # the blob went, or is no longer scanned clean
            return f"{outcome.name} {outcome.state}"
        summary.counts[key] += 1
        if key == "refused":
            summary.refused.append({"id": str(pk), "variant": outcome.name, "code": outcome.error_code})
            return f"{outcome.name} refused ({outcome.error_code})"
        return f"{outcome.name} {key}"

    def enqueue_one(self, pk: Any, stages: list[str], forced: bool, summary: Summary) -> None:
        from ... import tasks

        every_stage = list(stages) == list(processing.STAGES)
        if tasks.enqueue(pk, stages=None if every_stage else stages, force=forced) is None:
            summary.counts["not_enqueued"] += 1
            summary.not_enqueued.append(str(pk))
            self.line(f"{pk}: not enqueued")
        else:
            summary.counts["enqueued"] += 1
            self.line(f"{pk}: enqueued")

    @contextmanager
    def stop_after_current_blob(self) -> Iterator[None]:
        """While the run lasts, a first Ctrl-C asks it to stop after the blob in hand; a second stops it now."""
        if threading.current_thread() is not threading.main_thread():
            yield  # signals reach the main thread only: a run in a thread is stopped by its caller
            return
        previous = signal.getsignal(signal.SIGINT)

        def stop(signum: int, frame: Any) -> None:
            # The second Ctrl-C raises here rather than through the handler we replaced: that one may
            # ignore SIGINT (a process started in the background by a non-interactive shell does).
            if self.stop_requested:
                raise KeyboardInterrupt
            self.stop_requested = True
            if not self.json:
                self.stderr.write("\nInterrupted: stopping after the current blob (Ctrl-C again to stop now).")

        signal.signal(signal.SIGINT, stop)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)

    # -- the output ----------------------------------------------------------------------

    def line(self, text: str) -> None:
        if self.verbosity >= 2 and not self.json:
            self.stdout.write(text)

    def report(self, summary: Summary) -> None:
        if self.json:
            # One line per run, as the other commands' --json: a log of runs is one object per line.
            self.stdout.write(json.dumps(summary.as_dict(), separators=(",", ":")))
            return
        counts = summary.counts
        scope = f"({summary.selection}{', forced' if summary.forced else ''}; {', '.join(summary.stages)})"
        if summary.mode == "enqueue":
            text = (
                f"enqueued {counts['enqueued']} blob(s) on task backend {summary.backend!r}, queue "
                f"{summary.queue!r} {scope}, for the workers"
            )
            if counts["not_enqueued"]:
                text += f"; {counts['not_enqueued']} refused"
        elif summary.variants:
            text = (
                f"variants {', '.join(summary.variants)} of {counts['blobs']} blob(s) inline {scope}: "
                f"{counts['made']} made, {counts['existed']} existed, {counts['refused']} refused, "
                f"{counts['busy']} being made elsewhere, {counts['gone']} gone"
            )
            if counts["errors"]:
                text += f"; {counts['errors']} error(s)"
        else:
            parts = []
            if "scan" in summary.stages:
                parts.append(f"scan: {counts['clean']} clean, {counts['infected']} infected, {counts['failed']} failed")
            if "analyze" in summary.stages:
                parts.append(f"analysis: {counts['analyzed']} analyzed, {counts['analysis_failed']} failed")
            parts.append(f"{counts['gone']} gone, {counts['nothing_to_do']} with nothing to do")
            if counts["errors"]:
                parts.append(f"{counts['errors']} error(s)")
            text = f"processed {counts['blobs']} blob(s) inline {scope}: {'; '.join(parts)}"
        if summary.mirrors:
            if summary.mode == "enqueue":
                text += f"; mirrors ({', '.join(summary.mirrors)}): {counts['mirror_enqueued']} blob(s) enqueued"
            else:
                text += (
                    f"; mirrors ({', '.join(summary.mirrors)}): {counts['mirrored']} cop(ies) made "
                    f"({filesizeformat(counts['mirrored_bytes'])}) for {counts['mirror_blobs']} blob(s), "
                    f"{counts['mirror_failed']} failed"
                )
        if summary.interrupted:
            text = f"[interrupted] {text}"
        self.stdout.write(text)
        for item in summary.uploads:
            self.stdout.write(f"  multipart upload verified: {item['id']} ({item['status']})")
        for item in summary.infected:
            self.stdout.write(f"  infected: {item['id']} ({item['signature']})")
        for item in summary.refused:
            self.stdout.write(f"  refused: {item['id']} ({item['variant']}: {item['code']})")
        for item in summary.analysis_failed:
            described = ", ".join(f"{name}: {code}" for name, code in item["analyzers"].items())
            self.stdout.write(f"  analysis failed: {item['id']} ({described})")
        if self.verbosity >= 1:
            for item in summary.failed:
                attempts = f"{item['attempts']} attempt(s)"
                self.stderr.write(f"  scan failed: {item['id']} ({item['code']}, {attempts}; still {item['state']})")
            for item in summary.mirror_failed:
                self.stderr.write(
                    f"  mirror copy failed: {item['kind']} {item['id']} to {item['target']} ({item['code']}: "
                    f"{item['error']})"
                )
            for item in summary.errors:
                self.stderr.write(f"  error: {item['id']}: {item['error']}")
            for pk in summary.not_enqueued:
                self.stderr.write(f"  not enqueued: {pk}")

    def exit_status(self, summary: Summary) -> None:
        if summary.interrupted:
            resume = f"; --after {summary.last_blob} resumes past its last blob" if summary.last_blob else ""
            raise CommandError(
                f"Interrupted after {summary.counts['blobs']} blob(s). What is done stays done: run the command "
                f"again to finish{resume}.",
                returncode=EXIT_INTERRUPTED,
            )
        problems = []
        if summary.failed:
            codes = ", ".join(sorted({item["code"] for item in summary.failed}))
            problems.append(
                f"{len(summary.failed)} scan(s) could not run ({codes}); those blobs are not clean, and the next "
                "run retries them"
            )
        if summary.mirror_failed:
            codes = ", ".join(sorted({str(item["code"]) for item in summary.mirror_failed}))
            problems.append(
                f"{len(summary.mirror_failed)} mirror cop(ies) could not be made ({codes}); recorded, and tried "
                "again once their retry time has come"
            )
        if summary.errors:
            problems.append(f"{len(summary.errors)} blob(s) failed with an error, left due for the next run")
        if summary.not_enqueued:
            problems.append(
                f"{len(summary.not_enqueued)} blob(s) could not be enqueued (see the log), left due for the next run"
            )
        if problems:
            raise CommandError("; ".join(problems) + ".", returncode=EXIT_INCOMPLETE)
