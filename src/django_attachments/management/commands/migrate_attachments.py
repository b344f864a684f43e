"""``manage.py migrate_attachments``: move blobs (and their variants) to another storage, or copy them to mirrors.

::

    manage.py migrate_attachments --to s3 --dry-run            # what would be copied, and how much
    manage.py migrate_attachments --to s3 --concurrency 4      # copy, verify, switch; the old objects are kept
    manage.py migrate_attachments --to s3 --delete-source      # ... and deleted once switched
    manage.py migrate_attachments --to s3 --from default --owner-type patient --tenant 7 --limit 1000
    manage.py migrate_attachments --mirror                     # backfill every MIRRORS storage
    manage.py migrate_attachments --mirror --to backup --json  # one mirror; the summary as one JSON line

Each blob's bytes are streamed to the target (server-side between buckets of
one S3 service), verified there (size and SHA-256), and the blob switched in
one short transaction under its row lock; its variants follow it. Uploads,
downloads, links and purges go on meanwhile. Run it again after an
interruption, even ``kill -9``: what is switched is not copied again.

Exits with status 0 when everything selected was done, 1 when a blob failed
(listed; it stays where it was, and the next run tries it again), 2 on wrong
arguments and 130 when interrupted (Ctrl-C stops after the blobs in hand).
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from django.template.defaultfilters import filesizeformat

from ...conf import app_settings
from ...exceptions import AttachmentsImproperlyConfigured
from ...services import migrating
from ..progress import Progress
from .purge_orphan_attachments import positive

EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class Command(BaseCommand):
    help = (
        "Move blobs and their variants to the storage --to (copied, verified, switched under a row lock), "
        "or with --mirror copy them to the MIRRORS storages."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--to", metavar="ALIAS", help="The storage alias to move to (a key of STORAGES).")
        parser.add_argument("--from", dest="source", metavar="ALIAS", help="Only blobs (and variants) stored here.")
        parser.add_argument(
            "--mirror",
            action="store_true",
            help="Copy to the mirrors instead of moving: every MIRRORS storage, or --to (one of them).",
        )
        parser.add_argument("--owner-type", metavar="TYPE", help="Only blobs linked to an owner of this type.")
        parser.add_argument("--tenant", metavar="TENANT", help="Only this tenant's blobs.")
        parser.add_argument("--limit", type=positive, help="Stop after this many blobs.")
        parser.add_argument("--batch-size", type=positive, default=500, help="Blobs listed per query (500).")
        parser.add_argument(
            "--concurrency", type=positive, default=1, help="Blobs copied at once, each in its own thread (1)."
        )
        parser.add_argument(
            "--delete-source",
            action="store_true",
            help="Delete each old object once its blob is switched (by default it is kept as a copy, read if "
            "the new storage fails, and removed with its blob); also deletes those an earlier run kept.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Report what would be copied; change nothing.")
        parser.add_argument("--json", action="store_true", help="Print the summary as one JSON object on one line.")

    def handle(self, *args: Any, **options: Any) -> None:
        self.json = options["json"]
        target, source, mirror = options["to"], options["source"], options["mirror"]
        defined = set(app_settings_storages())
        for name, alias in (("--to", target), ("--from", source)):
            if alias is not None and alias not in defined:
                raise CommandError(
                    f"{name} {alias!r} is not an alias of settings.STORAGES ({', '.join(sorted(defined))}).",
                    returncode=EXIT_USAGE,
                )
        if mirror:
            if options["delete_source"]:
                raise CommandError("--delete-source moves; it does not go with --mirror.", returncode=EXIT_USAGE)
            if not app_settings.MIRRORS:
                raise CommandError("--mirror: DJANGO_ATTACHMENTS['MIRRORS'] is empty.", returncode=EXIT_USAGE)
            if target is not None and target not in app_settings.MIRRORS:
                raise CommandError(
                    f"--mirror --to {target!r}: not one of MIRRORS ({', '.join(app_settings.MIRRORS)}).",
                    returncode=EXIT_USAGE,
                )
        elif target is None:
            raise CommandError("--to is required (or --mirror).", returncode=EXIT_USAGE)
        elif target in app_settings.MIRRORS:
            # Moved there, a blob's mirror copy would become its only object, and nothing would say so.
            raise CommandError(
                f"--to {target!r} is a mirror (MIRRORS): to make it the storage, take it out of MIRRORS first; "
                "the copies there are then taken over without copying.",
                returncode=EXIT_USAGE,
            )
        elif source == target:
            raise CommandError("--from and --to name the same storage.", returncode=EXIT_USAGE)

        self.verbosity = options["verbosity"]
        on_terminal = self.stderr.isatty() and not self.json and self.verbosity >= 1
        self.bar: Progress | None = None
        self.on_terminal = on_terminal
        self.started = time.monotonic()
        self.done_bytes = 0
        self.total_bytes = 0
        self.done = 0
        self.stop = threading.Event()
        try:
            with self.first_interrupt_stops():
                result = migrating.migrate(
                    target,
                    mirror=mirror,
                    source=source,
                    owner_type=options["owner_type"],
                    tenant=options["tenant"],
                    limit=options["limit"],
                    batch_size=options["batch_size"],
                    concurrency=options["concurrency"],
                    delete_source=options["delete_source"],
                    dry_run=options["dry_run"],
                    on_start=self.on_start,
                    on_blob=self.on_blob,
                    stop=self.stop,
                )
        except AttachmentsImproperlyConfigured as exc:
            raise CommandError(str(exc), returncode=EXIT_USAGE) from exc
        except KeyboardInterrupt:  # a second Ctrl-C
            self.close_bar()
            raise CommandError(
                f"Stopped after {self.done} blob(s). A blob cut off in its copy is still where it was (its copy is "
                "stray, for the sweep); run the command again to finish.",
                returncode=EXIT_INTERRUPTED,
            ) from None
        except DatabaseError as exc:
            self.close_bar()
            raise CommandError(
                f"The database failed after {self.done} blob(s): {exc}. What is switched stays switched; run the "
                "command again to finish."
            ) from exc
        self.close_bar()
        interrupted = self.stop.is_set()
        self.report(result, interrupted)
        if interrupted:
            raise CommandError("Interrupted; run the command again to finish.", returncode=EXIT_INTERRUPTED)
        if result.failed:
            raise CommandError(
                f"{len(result.failed)} failure(s), listed above; those blobs stay where they were, and the next run "
                "tries them again.",
                returncode=EXIT_INCOMPLETE,
            )

    # -- progress ------------------------------------------------------------------------

    def on_start(self, blobs: int, size: int) -> None:
        self.total_bytes = size
        self.bar = Progress(self.stderr, total=blobs, enabled=self.on_terminal, unit="blobs")
        self.bar.update(0, self.rate(), force=True)

    def on_blob(self, blob_id: Any, size: int, outcome: migrating.MigrationResult) -> None:
        self.done += 1
        self.done_bytes += size
        if self.verbosity >= 2 and not self.json:
            if outcome.failed:
                state = "failed: " + "; ".join(f"{f['kind']} {f['id']}: {f['code']}" for f in outcome.failed)
            elif outcome.dry_run:
                state = "would copy" if outcome.copied else "would finish (variants, old objects)"
            elif outcome.copied or outcome.moved:
                state = f"copied {outcome.copied}, switched {outcome.moved}"
            else:
                state = "nothing to do"
            self.stdout.write(f"blob {blob_id} ({filesizeformat(size)}): {state}")
        if self.bar is not None:
            self.bar.update(self.done, self.rate())

    def rate(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        speed = self.done_bytes / elapsed
        text = f"{filesizeformat(self.done_bytes)}/{filesizeformat(self.total_bytes)}  {filesizeformat(speed)}/s"
        left = self.total_bytes - self.done_bytes
        if speed > 0 and left > 0:
            eta = int(left / speed)
            text += f"  ETA {eta // 3600:d}:{eta % 3600 // 60:02d}:{eta % 60:02d}"
        return text

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()

    @contextmanager
    def first_interrupt_stops(self) -> Iterator[None]:
        """A first Ctrl-C starts no more blobs (those in hand finish); a second stops now."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.getsignal(signal.SIGINT)

        def stop(signum: int, frame: Any) -> None:
            if self.stop.is_set():
                raise KeyboardInterrupt
            self.stop.set()
            if not self.json:
                self.stderr.write("\nInterrupted: finishing the blobs in hand (Ctrl-C again to stop now).")

        signal.signal(signal.SIGINT, stop)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)

    # -- the summary ---------------------------------------------------------------------

    def report(self, result: migrating.MigrationResult, interrupted: bool) -> None:
        if self.json:
            summary = {**result.as_dict(), "interrupted": interrupted}
            self.stdout.write(json.dumps(summary, separators=(",", ":")))
            return
        where = ", ".join(result.target)
        if result.dry_run:
            copied = f"{result.copied} blob(s) ({filesizeformat(result.bytes)})"
            text = f"[dry run] would copy {copied} and their variants to {where}"
            if result.blobs > result.copied:
                rest = "variants to move or old objects to delete" if result.delete_source else "variants to move"
                text += f"; {result.blobs - result.copied} more blob(s) have {rest}"
            self.stdout.write(text)
            return
        verb = "mirrored to" if result.mirror else "moved to"
        parts = [
            f"{result.blobs} blob(s) looked at",
            f"{result.copied} copied ({filesizeformat(result.bytes)})",
            f"{result.verified} verified ({result.verified_by_checksum} by the storage's checksum, "
            f"{result.verified_by_read} read back)",
        ]
        if not result.mirror:
            parts.append(f"{result.moved} switched ({result.taken_over} to a copy already there)")
            old = f"old objects: {result.sources_deleted} deleted, {result.sources_kept} kept"
            if result.sources_waiting:
                old += (
                    f", {result.sources_waiting} to delete once URLs signed before the switch expire (URL_EXPIRY: "
                    "run again with --delete-source then)"
                )
            parts.append(old)
        parts.append(f"{result.skipped} skipped")
        parts.append(f"{len(result.failed)} failed")
        self.stdout.write(f"{verb} {where}: " + "; ".join(parts))
        for failure in result.failed:
            self.stderr.write(f"  {failure['kind']} {failure['id']} ({failure['code']}): {failure['error']}")


def app_settings_storages() -> dict[str, Any]:
    from django.conf import settings

    return getattr(settings, "STORAGES", {}) or {}
