"""``manage.py verify_attachments``: re-hash every blob's bytes and report missing or corrupted objects.

::

    manage.py verify_attachments                 # all blobs; exit 1 if anything is wrong
    manage.py verify_attachments --storage s3 --json
    manage.py verify_attachments --limit 1000 -v 2

Reads every object once, in chunks; run it off-peak on large stores.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.template.defaultfilters import filesizeformat

from ... import services
from .purge_orphan_attachments import positive


class Command(BaseCommand):
    help = "Check that every blob's object exists and still has the stored SHA-256 and size."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--storage", metavar="ALIAS", help="Only blobs stored in this STORAGES alias.")
        parser.add_argument("--batch-size", type=positive, default=500, help="Blobs per database batch (500).")
        parser.add_argument("--limit", type=positive, help="Stop after this many objects (blobs, then variants).")
        parser.add_argument(
            "--json", action="store_true", help="Print the summary as one JSON object on one line (per run)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = options["verbosity"]

        def on_item(kind: str, item: dict[str, Any]) -> None:
            if verbosity >= 2 or (kind != "ok" and not options["json"]):
                what = f"variant {item['id']} of blob {item['blob']}" if "blob" in item else f"blob {item['id']}"
                self.stdout.write(f"{kind}: {what} ({item['storage']}: {item['name']})")

        result = services.verify_blobs(
            storage=options["storage"], batch_size=options["batch_size"], limit=options["limit"], on_item=on_item
        )
        if options["json"]:
            # One line per run, as purge_orphan_attachments --json: a log of runs is one object per line.
            self.stdout.write(json.dumps(result.as_dict(), separators=(",", ":")))
        else:
            self.stdout.write(
                f"verified {result.checked} blob(s) and variant(s), {filesizeformat(result.bytes)} read: "
                f"{len(result.missing)} missing, {len(result.mismatched)} corrupted, {len(result.errors)} unreadable"
            )
        if not result.ok:
            raise CommandError(
                f"{len(result.missing) + len(result.mismatched) + len(result.errors)} blob(s) or variant(s) "
                "failed verification."
            )
