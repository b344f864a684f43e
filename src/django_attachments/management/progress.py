"""A one-line progress bar for long management commands, drawn on stderr when it is a terminal.

::

    bar = Progress(self.stderr, total=queryset.count(), enabled=self.stderr.isatty())
    for item in items:
        ...
        bar.update(done, "3 clean, 0 failed")
    bar.close()                               # wiped, before the command's summary

Redrawn at most ten times a second (and at the last item), never painted in
the error style Django gives stderr on a terminal; nothing is written when
disabled, so a log or a pipe never holds carriage returns.
"""

from __future__ import annotations

import shutil
import time

from django.core.management.base import OutputWrapper


def _plain(text: str) -> str:
    return text


class Progress:
    def __init__(self, out: OutputWrapper, *, total: int | None, enabled: bool, unit: str = "items") -> None:
        self.out, self.total, self.enabled, self.unit = out, total, enabled, unit
        self.drawn_at = 0.0

    def update(self, done: int, detail: str = "", *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.drawn_at < 0.1 and done != self.total:
            return
        self.drawn_at = now
        columns = shutil.get_terminal_size((80, 24)).columns
        text = f"{done}/{self.total} {self.unit}" if self.total else f"{done} {self.unit}"
        if detail:
            text += f"  {detail}"
        if self.total:
            width = max(10, min(40, columns - len(text) - 4))
            filled = min(width, width * done // self.total)
            text = f"[{'#' * filled}{'.' * (width - filled)}] {text}"
        self.out.write(f"\r{text[: columns - 1]}\033[K", ending="", style_func=_plain)
        self.out.flush()

    def close(self) -> None:
        if self.enabled:
            self.out.write("\r\033[K", ending="", style_func=_plain)
            self.out.flush()
