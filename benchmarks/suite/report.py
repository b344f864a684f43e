"""Sizes and figures as text, the tables (plain text and Markdown), and the facts about the machine."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .config import GIB, KIB, MIB
from .measure import Growth

if TYPE_CHECKING:
    from .context import Context


def parse_size(text: str) -> int:
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    units = {"K": KIB, "M": MIB, "G": GIB}
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def fmt_size(n: int) -> str:
    for unit, scale in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    if n >= MIB:
        return f"{n / MIB:.1f} MiB"
    return f"{n} B"


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.3f}" if seconds < 10 else f"{seconds:.2f}"


def fmt_rate(size: int, seconds: float | None) -> str:
    if not seconds:
        return "-"
    return f"{size / seconds / 1e6:,.0f}" if size / seconds >= 10e6 else f"{size / seconds / 1e6:.1f}"


def fmt_ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "-"
    return f"{a / b:.2f}x"


def fmt_cpu(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    return f"{statistics.median(known):.2f}" if known else "-"


def fmt_mib(growth: Growth | None) -> str:
    if growth is None:
        return "-"
    return f"{'~' if growth.sampled else ''}{growth.kib / 1024:.1f}"


@dataclass
class Table:
    key: str
    title: str
    description: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def render_text(self) -> str:
        widths = [
            max(len(h), *(len(r[i]) for r in self.rows)) if self.rows else len(h) for i, h in enumerate(self.headers)
        ]
        line = lambda cells: "  ".join(  # noqa: E731
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )
        out = [self.title, "=" * len(self.title), line(self.headers), "-" * len(line(self.headers))]
        out += [line(r) for r in self.rows]
        out += [f"  {n}" for n in self.notes]
        return "\n".join(out)

    def render_markdown(self) -> str:
        out = [f"### {self.title}", "", self.description, ""]
        out.append("| " + " | ".join(self.headers) + " |")
        out.append("|" + "|".join(":---" if i == 0 else "---:" for i in range(len(self.headers))) + "|")
        out += ["| " + " | ".join(r) + " |" for r in self.rows]
        if self.notes:
            out.append("")
            out += [f"- {n}" for n in self.notes]
        return "\n".join(out)


def machine_facts(ctx: Context) -> list[tuple[str, str]]:
    import boto3
    import django
    import moto
    import rest_framework
    from django.db import connection

    with open("/proc/meminfo") as meminfo:
        mem_kib = int(next(line for line in meminfo if line.startswith("MemTotal:")).split()[1])
    cpu = platform.processor() or "?"
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as cpuinfo:
        cpu = next(line for line in cpuinfo if line.startswith("model name")).split(":", 1)[1].strip()
    if connection.vendor == "sqlite":
        import sqlite3

        database = f"SQLite {sqlite3.sqlite_version}"
    else:
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            database = f"{connection.vendor} {cursor.fetchone()[0]}"
    server = ctx.args.server
    if server == "gunicorn":
        import gunicorn

        server = f"gunicorn {gunicorn.__version__}, 1 sync worker, --timeout 600"
    else:
        server = "runserver --noreload --nothreading"
    return [
        ("date", dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("nproc", str(len(os.sched_getaffinity(0)))),
        ("CPU", cpu),
        ("memory", f"{mem_kib / 1024 / 1024:.1f} GiB"),
        ("kernel", platform.release()),
        ("Python", platform.python_version()),
        ("Django", django.get_version()),
        ("DRF", rest_framework.__version__),
        ("database", database),
        ("server", server),
        ("S3", f"moto {moto.__version__} (server mode, 127.0.0.1), boto3 {boto3.__version__}"),
        ("load average", " / ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1/5/15 min, at start)"),
    ]


LEGEND = (
    "Each project figure sits next to an anchor measured in the same run on the same bytes. Times are wall "
    "times, the median of the runs; MB/s are 10^6 bytes per second; ratio is project time / anchor time (above 1: "
    "the project is slower). RSS+ MiB is the peak RSS growth during the request (VmHWM of the process, reset "
    "first via /proc/PID/clear_refs; `~` marks a sampled VmRSS where the reset was refused), the largest over the "
    "runs. CPU s is user + system time of the process (all threads), in 10 ms ticks. The machine may have been "
    "running other work: see the load averages."
)


def write_markdown(ctx: Context, path: Path, facts: list[tuple[str, str]], command: str, wall: float) -> None:
    out = [
        f"## Benchmark run of {facts[0][1]}",
        "",
        f"`{command}` ({wall:.0f} s)",
        "",
        "| machine | |",
        "|:---|:---|",
    ]
    out += [f"| {k} | {v} |" for k, v in facts[1:]]
    out.append(f"| load average at end | {' / '.join(f'{x:.2f}' for x in os.getloadavg())} |")
    out += ["", LEGEND]
    for table in ctx.tables:
        out.append("")
        if table.headers == ["-"]:
            out += [f"### {table.title}", "", table.description]
            out += [f"- {n}" for n in table.notes]
        else:
            out.append(table.render_markdown())
    if ctx.targets:
        out += ["", "### Targets", "", "| what | goal | measured | met |", "|:---|:---|---:|:---|"]
        out += ["| " + " | ".join(row) + " |" for row in ctx.targets]
    out += ["", "Sanity checks: " + ("all passed." if not ctx.problems else f"{len(ctx.problems)} FAILED.")]
    path.write_text("\n".join(out) + "\n")


def print_targets(ctx: Context) -> None:
    if not ctx.targets:
        return
    table = Table(
        "targets", "Targets (for information; nothing fails on them)", "", ["what", "goal", "measured", "met"]
    )
    table.rows = ctx.targets
    print("\n" + table.render_text() + "\n", flush=True)
