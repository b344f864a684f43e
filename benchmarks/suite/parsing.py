"""``parse``: Django's multipart parser in process, by chunk size and by where SHA-256 runs.

Each measurement is a fresh process (``suite/parsing_child.py``): a client
process sends a multipart body over a loopback TCP connection, and the child
parses it through gunicorn's ``Body`` with Django's ``MultiPartParser``. The
anchor is Django's default handlers at Django's 64 KiB (the bare view's
parse); the project's handlers are measured at several chunk sizes, with
SHA-256 on a thread beside the parser (``ours``, as installed) and on the
parser's own thread (``inline``, the handler before). Rounds alternate the
order of the cases. Besides wall time: user and system CPU seconds and minor
page faults of the parsing process, which say where the time goes.
"""

from __future__ import annotations

import statistics

from .config import BENCH_DIR, KIB, MIB, log
from .context import Context
from .payloads import Pool
from .pipeline import child_json
from .report import Table, fmt_size

SIZES = [256 * MIB, 1024 * MIB]
QUICK_SIZES = [16 * MIB]
ANCHOR = ("django", 64 * KIB)
CASES = [ANCHOR, ("inline", 1 * MIB), ("ours", 64 * KIB), ("ours", 256 * KIB), ("ours", 1 * MIB), ("ours", 4 * MIB)]
QUICK_CASES = [ANCHOR, ("inline", 1 * MIB), ("ours", 1 * MIB)]


def _parse_once(ctx: Context, pool: Pool, size: int, mode: str, chunk: int) -> dict | None:
    argv = [str(BENCH_DIR / "suite" / "parsing_child.py"), str(pool.path), str(size), str(chunk), mode]
    return child_json(ctx, argv, f"parse {mode} {chunk}", 900)


def bench_parse(ctx: Context) -> None:
    sizes = QUICK_SIZES if ctx.args.quick else SIZES
    cases = QUICK_CASES if ctx.args.quick else CASES
    repeat = ctx.args.repeat if ctx.args.repeat_explicit or ctx.args.quick else 5
    pool = Pool(ctx.workdir / "parse-pool.bin", max(sizes))
    table = Table(
        "parse",
        "Parsing an upload",
        "Django's `MultiPartParser` in a fresh process per run, reading a multipart body from a loopback TCP "
        "connection through gunicorn's `Body` (a client process sends it, 1 MiB `sendall()` at a time). Anchor: "
        "Django's default upload handlers at its 64 KiB chunks (the bare view's parse). `ours`: the API's handlers "
        "as installed (size limit, SHA-256 on a thread beside the parser); `inline`: SHA-256 on the parser's "
        "thread (the handler before). CPU and minor page faults are the parsing process's.",
        ["size", "handlers", "chunk", "s", "min-max s", "MB/s", "user s", "sys s", "minor faults", "ratio"],
    )
    try:
        for size in sizes:
            expected = pool.prefix_digests(size)[0].hexdigest()
            runs: dict[tuple[str, int], list[dict]] = {case: [] for case in cases}
            for round_number in range(repeat):
                for mode, chunk in cases if round_number % 2 == 0 else cases[::-1]:
                    result = _parse_once(ctx, pool, size, mode, chunk)
                    if result is None:
                        continue
                    ctx.check(result["size"] == size, f"parse {mode} {chunk}: {result['size']} bytes, not {size}")
                    if mode != "django":
                        ctx.check(result["checksum"] == expected, f"parse {mode} {chunk}: wrong SHA-256")
                    runs[(mode, chunk)].append(result)
                log(f"  parse {fmt_size(size)} round {round_number + 1}/{repeat}")
            anchor = statistics.median(r["wall"] for r in runs[ANCHOR]) if runs[ANCHOR] else None
            for (mode, chunk), results in runs.items():
                if not results:
                    continue
                walls = [r["wall"] for r in results]
                wall = statistics.median(walls)
                table.rows.append(
                    [
                        fmt_size(size),
                        mode,
                        fmt_size(chunk),
                        f"{wall:.3f}",
                        f"{min(walls):.3f}-{max(walls):.3f}",
                        f"{size / wall / 1e6:,.0f}",
                        f"{statistics.median(r['user'] for r in results):.2f}",
                        f"{statistics.median(r['sys'] for r in results):.2f}",
                        f"{statistics.median(r['minflt'] for r in results):,.0f}",
                        f"{wall / anchor:.2f}x" if anchor else "-",
                    ]
                )
            if anchor and runs[("ours", MIB)]:
                ours = statistics.median(r["wall"] for r in runs[("ours", MIB)])
                ctx.target(f"parse {fmt_size(size)}: ours (1 MiB) vs bare parse", "<= 1.03x", f"{ours / anchor:.2f}x",
                           ours / anchor <= 1.03)  # fmt: skip
    finally:
        pool.close()
        pool.path.unlink(missing_ok=True)
    table.notes.append(
        f"median of {repeat} run(s), each a fresh process; rounds alternate the order of the cases; ratio: wall "
        "time / the anchor's. The environment passes through to the parsing process: MALLOC_MMAP_THRESHOLD_ and "
        "MALLOC_TRIM_THRESHOLD_ show what glibc's allocator costs (docs/benchmarks.md, Parsing an upload)"
    )
    ctx.add(table)
