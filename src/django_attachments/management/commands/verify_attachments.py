"""``manage.py verify_attachments``: re-hash every blob's bytes and report missing or corrupted objects.

::

    manage.py verify_attachments                 # all blobs; exit 1 if anything is wrong
    manage.py verify_attachments --storage s3 --json
    manage.py verify_attachments --limit 1000 -v 2

Reads every object once, in chunks; run it off-peak on large stores. Every
copy in another storage is checked too (a mirror's, or one a migration
kept), and named when bad. With ``MIRRORS`` set, it also reports the blobs
and variants older than a minute that lack a copy in a mirror (their copy
failed, or no task made it): counted per mirror, listed up to
``--list-missing``; ``process_attachments`` makes them.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.template.defaultfilters import filesizeformat

from ... import services
from ...conf import app_settings
from ...services import mirroring
from .purge_orphan_attachments import positive


class Command(BaseCommand):
    help = (
        "Check that every blob's object exists and still has the stored SHA-256 and size, and every copy's; "
        "report the blobs and variants lacking a copy in a mirror (MIRRORS)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--storage", metavar="ALIAS", help="Only blobs stored in this STORAGES alias.")
        parser.add_argument("--batch-size", type=positive, default=500, help="Blobs per database batch (500).")
        parser.add_argument("--limit", type=positive, help="Stop after this many objects (blobs, then variants).")
        parser.add_argument(
            "--list-missing",
            type=positive,
            default=mirroring.MISSING_LISTED,
            metavar="N",
            help=f"Blobs (and variants) listed per mirror lacking their copy ({mirroring.MISSING_LISTED}); all are "
            "counted.",
        )
        parser.add_argument(
            "--json", action="store_true", help="Print the summary as one JSON object on one line (per run)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = options["verbosity"]

        def on_item(kind: str, item: dict[str, Any]) -> None:
            if verbosity >= 2 or (kind != "ok" and not options["json"]):
                what = f"variant {item['id']} of blob {item['blob']}" if "blob" in item else f"blob {item['id']}"
                if item.get("kind") == "copy":
                    copied = f"variant {item['variant']}" if "variant" in item else f"blob {item['blob']}"
                    what = f"copy {item['id']} of {copied}"
                self.stdout.write(f"{kind}: {what} ({item['storage']}: {item['name']})")

        result = services.verify_blobs(
            storage=options["storage"], batch_size=options["batch_size"], limit=options["limit"], on_item=on_item
        )
        # One query per mirror and kind (a window counts them all), whatever the number of blobs.
        mirrors = [alias for alias in app_settings.MIRRORS if options["storage"] in (None, alias)]
        missing = [mirroring.missing(alias, limit=options["list_missing"]) for alias in mirrors]
        lacking = [report for report in missing if report.count]
        if options["json"]:
            # One line per run, as purge_orphan_attachments --json: a log of runs is one object per line.
            data = result.as_dict()
            data["missing_copies"] = [report.as_dict() for report in missing]
            data["ok"] = result.ok and not lacking
            self.stdout.write(json.dumps(data, separators=(",", ":")))
        else:
            self.stdout.write(
                f"verified {result.checked} blob(s), variant(s) and copies, {filesizeformat(result.bytes)} read: "
                f"{len(result.missing)} missing, {len(result.mismatched)} corrupted, {len(result.errors)} unreadable"
            )
            for report in missing:
                self.stdout.write(
                    f"mirror {report.storage!r}: {report.blobs} blob(s) and {report.variants} variant(s) without a copy"
                )
                for item in report.listed:
                    what = f"variant {item['id']} of blob {item['blob']}" if item["kind"] == "variant" else item["id"]
                    why = f"{item['attempts']} failed attempt(s): {item['code']}" if item["attempts"] else "no attempt"
                    self.stdout.write(
                        f"  no copy in {report.storage!r}: {'' if item['kind'] == 'variant' else 'blob '}{what} ({why})"
                    )
                if report.count > len(report.listed):
                    self.stdout.write(f"  ... and {report.count - len(report.listed)} more")
        problems = []
        if not result.ok:
            problems.append(
                f"{len(result.missing) + len(result.mismatched) + len(result.errors)} blob(s), variant(s) or "
                "copies failed verification"
            )
        if lacking:
            described = ", ".join(f"{report.count} in {report.storage!r}" for report in lacking)
            problems.append(f"copies are missing in a mirror ({described}): process_attachments makes them")
        if problems:
            raise CommandError("; ".join(problems) + ".")
