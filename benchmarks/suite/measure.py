"""Wall time aside, what a process costs: its CPU time and the growth of its peak RSS (Linux ``/proc``)."""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from tests.servers import reset_peak, status_kib

from .config import CHUNK


@dataclass(frozen=True)
class Growth:
    kib: int
    sampled: bool  # True: VmRSS sampled (the peak could not be reset)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of the process (all its threads) so far."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class PeakMeter:
    """Peak RSS growth of ``pid`` over a block (VmHWM reset first, else VmRSS sampled), and its CPU time."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.growth: Growth | None = None
        self.cpu: float | None = None
        self.start_kib: int | None = None  # RSS as the block began (after the reset)
        self.peak_kib: int | None = None  # the highest RSS seen over the block
        self._stop = threading.Event()
        self._max = 0
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self._max = max(self._max, status_kib(self.pid, "VmRSS"))
            except (OSError, RuntimeError):
                return
            self._stop.wait(0.02)

    def __enter__(self) -> PeakMeter:
        self._cpu = cpu_seconds(self.pid)
        self._reset = reset_peak(self.pid)
        try:
            self._start = status_kib(self.pid, "VmHWM" if self._reset else "VmRSS")
        except (OSError, RuntimeError):
            self._start = None
            return self
        if not self._reset:
            self._max = self._start
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        cpu = cpu_seconds(self.pid)
        if cpu is not None and self._cpu is not None:
            self.cpu = cpu - self._cpu
        if self._start is None:
            return
        self.start_kib = self._start
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.peak_kib = self._max
            self.growth = Growth(max(self._max - self._start, 0), sampled=True)
        else:
            try:
                self.peak_kib = status_kib(self.pid, "VmHWM")
            except (OSError, RuntimeError):
                self.growth = None
            else:
                self.growth = Growth(max(self.peak_kib - self._start, 0), sampled=False)


class FlowMeter:
    """CPU time and peak RSS growth of ``pid`` over a flow of steps (requests), and of each step.

    Each step runs under its own PeakMeter, which resets the peak as the step
    begins; the flow's peak is the highest of its steps' peaks, its growth that
    peak above the RSS the first step began with. The flow's CPU time is taken
    from its start to its end, so work the process does between two steps
    counts too.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.meters: dict[str, PeakMeter] = {}
        self.seconds: dict[str, float] = {}
        self.cpu: float | None = None
        self.wall: float | None = None  # seconds from the flow's start to its end
        self._cpu: float | None = None
        self._started = 0.0

    def __enter__(self) -> FlowMeter:
        self._cpu = cpu_seconds(self.pid)
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._started
        cpu = cpu_seconds(self.pid)
        if cpu is not None and self._cpu is not None:
            self.cpu = cpu - self._cpu

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[PeakMeter]:
        """Measure one step: its PeakMeter, and its wall time in ``seconds[name]``."""
        with PeakMeter(self.pid) as meter:
            started = time.perf_counter()
            try:
                yield meter
            finally:
                self.seconds[name] = time.perf_counter() - started
        self.meters[name] = meter

    @property
    def growth(self) -> Growth | None:
        meters = list(self.meters.values())
        if not meters or any(m.growth is None or m.start_kib is None or m.peak_kib is None for m in meters):
            return None
        peak = max(m.peak_kib for m in meters if m.peak_kib is not None)
        start = meters[0].start_kib or 0
        return Growth(max(peak - start, 0), sampled=any(m.growth.sampled for m in meters if m.growth is not None))


def worst(growths: list[Growth | None]) -> Growth | None:
    known = [g for g in growths if g is not None]
    return max(known, key=lambda g: g.kib) if known else None


def median(values: list[float]) -> float:
    return statistics.median(values)


def sync(room: int = 0, folder: str | None = None) -> None:
    """Flush dirty pages, so one measurement does not pay for the previous one's writes.

    ``room``: also write and delete a scratch file of that many bytes in
    ``folder`` first, so that the memory the measured request writes into
    (its temporary file's page cache) was freed a moment ago. On a virtual
    machine whose free memory goes back to the host, a request that writes
    1 GiB into pages the guest must fetch again spends up to ten times the
    system time of one that reuses pages just freed: a request after one
    that deleted its file was fast, a request after one that kept it slow
    (docs/benchmarks.md, Parsing an upload). Both sides of a comparison get
    the same start.
    """
    if room:
        block = memoryview(bytearray(CHUNK))
        with tempfile.NamedTemporaryFile(dir=folder, prefix="room-") as scratch:
            left = room
            while left > 0:
                left -= scratch.write(block[: min(left, CHUNK)])
            scratch.flush()
    os.sync()
