"""6. Purging orphan blobs: ``benchmarks/purge_s3.py``, run with a small count under ``--quick``."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from .config import BENCH_DIR, REPO_ROOT, log
from .context import Context
from .report import Table


def bench_purge(ctx: Context) -> None:
    script = BENCH_DIR / "purge_s3.py"
    pointer = (
        "Purging is measured by `benchmarks/purge_s3.py` (batched purge against one DeleteObject per blob, on "
        "moto); run it by hand: `.venv/bin/python benchmarks/purge_s3.py` (N = 100,000, about half an hour) "
        "or `--count 2000` for a quick look."
    )
    has_count = script.exists() and "--count" in script.read_text(errors="replace")
    if not (ctx.args.quick and has_count):
        table = Table("purge", "Purge", pointer if script.exists() else "benchmarks/purge_s3.py is missing.", ["-"])
        table.notes.append("not run here" + ("" if ctx.args.quick else " (runs with a small --count under --quick)"))
        print("\nPurge\n=====\n" + table.description + "\n", flush=True)
        ctx.tables.append(table)
        return
    count = 100
    log(f"  purge: running benchmarks/purge_s3.py --count {count}")
    started = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, str(script), "--count", str(count), "--strays", str(count)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    seconds = time.perf_counter() - started
    output = done.stdout.strip()
    ctx.check(
        done.returncode == 0,
        f"purge_s3.py --count {count} --strays {count} exited {done.returncode}:\n{done.stderr[-2000:]}",
    )
    table = Table(
        "purge",
        "Purge",
        f"`benchmarks/purge_s3.py --count {count} --strays {count}` (a small N; its own anchor is the naive loop), "
        f"run by this suite in {seconds:.1f} s, exit status {done.returncode}. Its output:\n\n```\n{output}\n```",
        ["-"],
    )
    print(
        f"\nPurge (benchmarks/purge_s3.py --count {count} --strays {count}, {seconds:.1f} s, exit {done.returncode})\n"
        + output
        + "\n",
        flush=True,
    )
    ctx.tables.append(table)
