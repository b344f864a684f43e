"""``manage.py purge_orphan_attachments``: remove orphan blobs, stray objects and dangling links.

Every run also removes direct uploads that expired before they were completed
(their tickets, objects and parts), closed tickets older than the grace
period, and multipart uploads that no ticket knows (older than the grace
period, and at least an hour: ``multipart`` in the summary).

::

    manage.py purge_orphan_attachments                      # orphans older than ORPHAN_GRACE_PERIOD
    manage.py purge_orphan_attachments --older-than 7d --stray --dry-run -v 2
    manage.py purge_orphan_attachments --dangling           # report links whose owner is gone
    manage.py purge_orphan_attachments --dangling --delete  # ... and remove them
    manage.py purge_orphan_attachments --stray --json       # one JSON line, for cron and monitoring
    manage.py purge_orphan_attachments --stale-variants     # variants of specs changed or dropped since

Exits with status 1 when any delete failed (the objects concerned are stray
and the next ``--stray`` run retries them; rows never point at missing bytes),
and 2 on wrong arguments.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from django.template.defaultfilters import filesizeformat

from ... import services
from ...exceptions import UnsafePurge
from ...services.purging import STRAY_MIN_AGE, check_stray_grace

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration(text: str) -> timedelta:
    """'90m', '24h', '7d', '2w', '30s' or a number of seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration such as 90m, 24h or 7d")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


class Command(BaseCommand):
    help = (
        "Remove orphan blobs past the grace period and expired direct uploads; with --stray, stray objects; "
        "with --dangling, dangling links."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=duration,
            metavar="DURATION",
            help="Grace period for orphans and strays, e.g. 90m, 24h, 7d (default: ORPHAN_GRACE_PERIOD).",
        )
        parser.add_argument("--stray", action="store_true", help="Also delete stray objects (no blob references them).")
        parser.add_argument(
            "--dangling", action="store_true", help="Also report attachments whose owner no longer resolves."
        )
        parser.add_argument("--delete", action="store_true", help="With --dangling: remove those attachments.")
        parser.add_argument(
            "--stale-variants",
            action="store_true",
            help="Also remove variants no declared spec makes any more (a spec changed or dropped); run it once "
            "every process has the new settings.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Report what would be removed; change nothing.")
        parser.add_argument(
            "--json", action="store_true", help="Print the summary as one JSON object on one line (per run)."
        )
        parser.add_argument("--batch-size", type=positive, default=500, help="Rows or objects per batch (500).")
        parser.add_argument("--limit", type=positive, help="Stop after this many items of each kind.")
        parser.add_argument(
            "--allow-young-strays",
            action="store_true",
            help=f"Let --stray delete objects, and the purge abort multipart uploads no ticket knows, younger than "
            f"{STRAY_MIN_AGE} (only with uploads and migrations stopped).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["delete"] and not options["dangling"]:
            raise CommandError("--delete only applies to --dangling.", returncode=2)
        if options["stray"]:
            try:  # refused before anything is removed, dry run or not
                check_stray_grace(options["older_than"], allow_young=options["allow_young_strays"])
            except UnsafePurge as exc:
                raise CommandError(f"--stray: {exc} (--allow-young-strays)", returncode=2) from None
        self.verbosity = options["verbosity"]
        self.progress = sys.stderr.isatty() and not options["json"] and self.verbosity >= 1
        self.counted = 0
        common = {"batch_size": options["batch_size"], "limit": options["limit"], "on_item": self.on_item}
        aged = {"older_than": options["older_than"], "dry_run": options["dry_run"]}
        try:
            results = [
                services.purge_orphans(**aged, **common),
                services.purge_uploads(**aged, **common),
                services.purge_incomplete_uploads(**aged, **common, allow_young=options["allow_young_strays"]),
            ]
            if options["stray"]:
                results.append(services.purge_strays(**aged, **common, allow_young=options["allow_young_strays"]))
            if options["stale_variants"]:
                results.append(services.purge_stale_variants(dry_run=options["dry_run"], **common))
            if options["dangling"]:
                results.append(services.find_dangling(delete=options["delete"] and not options["dry_run"], **common))
        except DatabaseError as exc:
            raise CommandError(
                f"The database failed after {self.counted} item(s): {exc}. Nothing points at missing bytes: a batch's "
                "bytes are deleted only after its rows are; run the command again to finish."
            ) from exc
        if self.progress:
            self.stderr.write("\r\033[K", ending="")

        if options["json"]:
            summary = {"dry_run": options["dry_run"], "ok": all(r.ok for r in results)}
            summary.update({r.kind: r.as_dict() for r in results})
            # One line per run: a log that several runs append to stays one object per line.
            self.stdout.write(json.dumps(summary, separators=(",", ":")))
        else:
            self.stdout.write(self.summary(results, options["dry_run"]))
            if self.verbosity >= 1:
                for result in results:
                    for failure in result.failures:
                        self.stderr.write(f"  {failure}")
        failures = sum(len(r.failures) for r in results)
        if failures:
            raise CommandError(
                f"{failures} failure(s), listed above. Rows always go first: an object whose delete failed "
                "is now stray, and the next --stray run retries it."
            )

    def on_item(self, kind: str, item: dict[str, Any]) -> None:
        self.counted += 1
        if self.verbosity >= 2:
            described = ", ".join(f"{key}={value}" for key, value in item.items())
            self.stdout.write(f"{kind}: {described}")
        elif self.progress and self.counted % 100 == 0:
            self.stderr.write(f"\r{kind}: {self.counted} so far…", ending="")
            self.stderr.flush()

    @staticmethod
    def summary(results: list[services.PurgeResult], dry_run: bool) -> str:
        verb = "would remove" if dry_run else "removed"
        parts = []
        for result in results:
            if result.kind == "dangling":
                done = f", {result.removed} removed" if result.removed else ""
                part = f"dangling links: {result.found} found{done}"
                if result.unregistered:
                    listed = ", ".join(f"{name} ({count})" for name, count in sorted(result.unregistered.items()))
                    part += f"; links of unregistered owner types: {listed}"
            else:
                count = result.found if dry_run else result.removed
                part = f"{result.kind}: {verb} {count} ({filesizeformat(result.bytes)})"
                if result.failures:
                    part += f", {len(result.failures)} failed"
            parts.append(part)
        return ("[dry run] " if dry_run else "") + "; ".join(parts)
