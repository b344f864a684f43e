"""The PDF renderer's child process: stop signals, crashes, storage errors, forks.

A real child, a real PDFium: the worker's stream is a file whose reads can be
held back (so that the child is caught mid-job) or fail.
"""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
import time

import pytest

from django_attachments.processing.renderers import PdfRenderer, RenderError, RenderTimeout, VariantSpec, pdf_child
from tests import samples

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals and fork as on Linux"),
    pytest.mark.skipif(PdfRenderer().unavailable_reason() is not None, reason="pypdfium2 is not installed"),
]


def spec():
    return VariantSpec("fit", 100, 100, "png")


class Gate(io.BytesIO):
    """A file whose first read waits until released: the child is mid-job, waiting for a block, meanwhile."""

    def __init__(self, data):
        super().__init__(data)
        self.reading, self.release = threading.Event(), threading.Event()

    def read(self, size=-1):
        if not self.release.is_set():
            self.reading.set()
            self.release.wait(10)
        return super().read(size)


def render_in_a_thread(stream):
    outcome = {}

    def run():
        try:
            outcome["value"] = PdfRenderer().render(stream, spec())
        except BaseException as exc:
            outcome["value"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def signal_mid_job(signo):
    PdfRenderer().render(io.BytesIO(samples.pdf()), spec())  # the child is running
    child = pdf_child.CHILD.process
    stream = Gate(samples.pdf())
    thread, outcome = render_in_a_thread(stream)
    assert stream.reading.wait(10)
    os.kill(child.pid, signo)
    time.sleep(0.3)
    stream.release.set()
    thread.join(20)
    return child, outcome["value"]


def test_the_child_has_a_session_of_its_own():
    """A Ctrl-C at a terminal, or a stop sent to the worker's process group, is the worker's to handle."""
    PdfRenderer().render(io.BytesIO(samples.pdf()), spec())
    assert os.getpgid(pdf_child.CHILD.process.pid) != os.getpgid(0)


@pytest.mark.parametrize("signo", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: signal.Signals(s).name)
def test_a_stop_signal_is_never_a_refusal_of_the_file(signo):
    _, outcome = signal_mid_job(signo)
    # A refusal (RenderError, not a timeout) would be remembered for good as "no preview".
    assert not (isinstance(outcome, RenderError) and not isinstance(outcome, RenderTimeout)), repr(outcome)
    # And the next PDF is drawn, by the same child or a new one: nothing left out of step.
    assert PdfRenderer().render(io.BytesIO(samples.pdf()), spec()).width == 100


def test_a_child_killed_mid_job_as_out_of_memory_is_a_crash_and_the_next_pdf_is_drawn():
    child, outcome = signal_mid_job(signal.SIGKILL)
    assert child.returncode == -signal.SIGKILL
    assert isinstance(outcome, RenderError) and "made the renderer crash (signal 9)" in str(outcome), repr(outcome)
    assert PdfRenderer().render(io.BytesIO(samples.pdf()), spec()).width == 100


class Failing(io.BytesIO):
    def __init__(self, data, error):
        super().__init__(data)
        self.error = error

    def read(self, size=-1):
        raise self.error


@pytest.mark.parametrize(
    "error",
    [BrokenPipeError(32, "storage connection"), ConnectionResetError(104, "reset"), EOFError("short"), ValueError("x")],
    ids=lambda error: type(error).__name__,
)
def test_an_error_of_the_stream_propagates_as_itself_not_as_the_childs_death(error):
    started = time.monotonic()
    with pytest.raises(type(error)) as caught:
        PdfRenderer().render(Failing(samples.pdf(), error), spec())
    assert caught.value is error
    # Not taken for the child's end, which waited for it to exit (5 s) before this was fixed.
    assert time.monotonic() - started < 4.5
    assert PdfRenderer().render(io.BytesIO(samples.pdf()), spec()).width == 100


def test_a_forked_copy_of_a_worker_draws_pdfs_while_a_thread_of_the_parent_holds_the_child():
    stream = Gate(samples.pdf())
    thread, _ = render_in_a_thread(stream)
    assert stream.reading.wait(10)  # the child's lock is held by that thread now
    pid = os.fork()
    if pid == 0:  # the forked copy: its own child, its own lock
        signal.alarm(20)  # a hang ends it by SIGALRM
        try:
            PdfRenderer().render(io.BytesIO(samples.pdf()), spec())
        except BaseException:
            os._exit(1)
        os._exit(0)
    stream.release.set()
    thread.join(20)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_the_byte_limit_is_part_of_the_digest_so_raising_it_retries_a_refused_pdf():
    small, large = PdfRenderer(max_read_bytes=100), PdfRenderer(max_read_bytes=10**9)
    with pytest.raises(RenderError, match="too large"):
        small.render(io.BytesIO(samples.pdf()), spec())
    assert spec().digest(small) != spec().digest(large)
