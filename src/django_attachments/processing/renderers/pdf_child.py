"""The process PDF previews are drawn in, so that a hostile PDF can be stopped: both of its ends.

PDFium is a C library: a file that makes it loop cannot be interrupted in the
process that called it, and one that crashes it takes that process down.
So :class:`~.pdf.PdfRenderer` draws in a child process, started on first use
and kept for the next PDFs (starting one costs about a third of a second,
most of it loading PDFium), one PDF at a time per parent process
(:data:`CHILD`). For each PDF the parent sends the child one line of JSON
on its stdin::

    {"size": 3084940, "spec": {...}, "max_pixels": 16777216}

The child draws the first page in-process (:meth:`~.pdf.PdfRenderer.render_here`),
asking the parent for each block PDFium reads (``{"read": [position, count]}``
on its stdout; the parent answers with the bytes, up to the renderer's
``max_read_bytes`` in all), and ends with one line of JSON, then the
encoded picture::

    {"done": {"ok": true, "width": 181, "height": 256, "content_type": "image/webp", "length": 8556}}\\n<the bytes>
    {"done": {"ok": false, "error": "RenderError", "message": "..."}}\\n

A child that does not answer within the renderer's ``timeout`` is killed
(:class:`~.base.RenderTimeout`), one killed by a signal means PDFium crashed
on the file (:class:`~.base.RenderError`); the next PDF starts a new child.
The child touches no database, no store and no setting.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any, cast

from .base import PreviewUnsupported, Rendered, RenderError, RenderTimeout, RenderUnavailable, VariantSpec

#: The errors that cross the process boundary, by name.
ERRORS: dict[str, type[Exception]] = {
    error.__name__: error for error in (RenderError, PreviewUnsupported, RenderTimeout, RenderUnavailable)
}
_PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
#: The signals that say PDFium crashed on the file (SIGKILL: the kernel's out-of-memory killer); any other
#: (a stop signal sent to the child) says nothing about the file.
CRASHES = frozenset({signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL, signal.SIGFPE, signal.SIGKILL})


# -- the child's end ---------------------------------------------------------------------------------


class PipeFile(io.RawIOBase):
    """The parent's file of ``size`` bytes, read block by block over this process's pipes.

    Each read sends ``{"read": [position, count]}`` on ``requests`` and takes
    the answer on ``replies``: a line with the number of bytes that follow,
    then those bytes (``-1``: the parent cannot give them; the read fails).
    """

    def __init__(self, size: int, requests: IO[bytes], replies: IO[bytes]) -> None:
        self.size = size
        self.position = 0
        self.requests = requests
        self.replies = replies

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self.position = base + offset
        return self.position

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self.size - self.position)
        if wanted <= 0:
            return 0
        self.requests.write(json.dumps({"read": [self.position, wanted]}).encode() + b"\n")
        self.requests.flush()
        count = int(self.replies.readline())
        if count < 0:
            raise OSError("the parent could not read the file")
        data = self.replies.read(count)
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)


def draw(job: dict[str, Any], requests: IO[bytes], replies: IO[bytes]) -> tuple[dict[str, Any], bytes]:
    """One job: the answer's header and the picture's bytes (none for an error)."""
    from .pdf import PdfRenderer

    # Unbuffered: PDFium's own block reads are what is asked for, no more (a buffer would read ahead).
    with PipeFile(int(job["size"]), requests, replies) as raw:
        try:
            renderer = PdfRenderer(max_pixels=int(job["max_pixels"]), isolate=False)
            rendered = renderer.render_here(cast(IO[bytes], raw), VariantSpec(**job["spec"]))
        except tuple(ERRORS.values()) as exc:
            return {"ok": False, "error": type(exc).__name__, "message": str(exc)}, b""
        except OSError as exc:  # the parent could not read the file: it knows why (its stream's error)
            return {"ok": False, "error": "OSError", "message": str(exc)}, b""
    header = {"ok": True, "width": rendered.width, "height": rendered.height, "content_type": rendered.content_type}
    return {**header, "length": len(rendered.data)}, rendered.data


def serve(jobs: IO[bytes], answers: IO[bytes]) -> None:
    """Answer each job line of ``jobs`` on ``answers``, until ``jobs`` ends (the parent went)."""
    for line in iter(jobs.readline, b""):
        header, data = draw(json.loads(line), answers, jobs)
        answers.write(json.dumps({"done": header}).encode() + b"\n" + data)
        answers.flush()


# -- the parent's end --------------------------------------------------------------------------------


class Child:
    """The child process of one parent process: started on first use, killed on a timeout, started anew."""

    def __init__(self, module: str = __name__) -> None:
        #: The module the child runs (``python -m``): this one.
        self.module = module
        #: Held for a whole job: one PDF at a time per process, as PDFium in-process needed anyway.
        self.lock = threading.Lock()
        self.process: subprocess.Popen[bytes] | None = None
        self.owner = 0  # the pid that started it: a forked copy of the parent starts its own
        self.errors: IO[bytes] | None = None
        self.pending = b""

    def draw(self, job: dict[str, Any], stream: IO[bytes], timeout: float, max_read_bytes: int) -> Rendered:
        """Have the child draw ``job`` from ``stream`` within ``timeout`` seconds (call it holding :attr:`lock`).

        The child asks for the blocks it needs; at most ``max_read_bytes`` are
        given in all, after which its reads fail and the file is refused.
        """
        deadline = time.monotonic() + timeout
        process = self._running()
        assert process.stdin is not None
        served = 0
        try:
            process.stdin.write(json.dumps(job).encode() + b"\n")
            process.stdin.flush()
            while True:
                message = json.loads(self._read_line(deadline))
                if "done" in message:
                    header = message["done"]
                    data = self._read_exactly(int(header.get("length", 0)), deadline)
                    break
                position, count = message["read"]
                if served + count > max_read_bytes:
                    process.stdin.write(b"-1\n")
                    served = max_read_bytes + 1
                else:
                    block = self._read_stream(stream, position, count)
                    served += len(block)
                    process.stdin.write(b"%d\n" % len(block) + block)
                process.stdin.flush()
        except TimeoutError:
            self.stop()
            message = f"PDFium took more than {timeout:g} s to draw the first page; it was stopped."
            raise RenderTimeout(message) from None
        except (BrokenPipeError, EOFError):  # it ended (or is ending): why?
            raise self._died(out_of_step=False) from None
        except (ValueError, KeyError, TypeError):  # it said something that is no message
            raise self._died(out_of_step=True) from None
        except BaseException:
            self.stop()  # stopped mid-job (a worker's shutdown): the child is out of step
            raise
        if served > max_read_bytes:
            raise RenderError(f"The PDF is too large to preview: more than {max_read_bytes:,} bytes of it read.")
        if not header.get("ok"):
            raise ERRORS.get(str(header.get("error")), RenderError)(str(header.get("message", "")))
        try:
            width, height, content_type = int(header["width"]), int(header["height"]), str(header["content_type"])
        except (KeyError, TypeError, ValueError):
            raise self._died(out_of_step=True) from None
        return Rendered(data=data, width=width, height=height, content_type=content_type)

    def _read_stream(self, stream: IO[bytes], position: int, count: int) -> bytes:
        """A block of the caller's stream; its own error propagates as itself, the child stopped (out of step)."""
        try:
            stream.seek(position)
            return stream.read(count)
        except BaseException:
            self.stop()
            raise

    def stop(self, *, kill: bool = True) -> None:
        """End the child: killed, or (``kill=False``, at exit) told to end by the end of its jobs."""
        try:
            if self.process is not None and self.owner == os.getpid():
                if not kill and self.process.stdin is not None:
                    with contextlib.suppress(OSError):
                        self.process.stdin.close()  # no more jobs: the child's loop ends
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self.process.wait(timeout=5)
                if self.process.poll() is None:
                    self.process.kill()
                self.process.wait()
                for pipe in (self.process.stdin, self.process.stdout):
                    if pipe is not None:
                        with contextlib.suppress(OSError):  # a reply buffered for a child gone: a broken pipe
                            pipe.close()
            if self.errors is not None and (self.process is None or self.owner == os.getpid()):
                self.errors.close()
        finally:
            self.process, self.pending, self.errors = None, b"", None

    def _running(self) -> subprocess.Popen[bytes]:
        if self.process is not None and self.owner == os.getpid() and self.process.poll() is None:
            return self.process
        if self.owner != os.getpid():
            self.process = None  # a forked copy: the pipes are the parent's, not ours to use or close
        self.stop()
        # The package's own folder first: the child imports it from where this process did.
        package_root = str(Path(__file__).resolve().parents[3])
        env = {key: value for key, value in os.environ.items() if key.lower() not in _PROXY_VARIABLES}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        self.errors = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errors,
            env=env,
            # Its own session: a Ctrl-C or a stop signal sent to the worker's process group is the worker's to
            # handle; it ends the child through its stdin (or a kill), never in the middle of a read.
            start_new_session=True,
        )
        if not self.owner:
            atexit.register(self.stop, kill=False)  # once: no child or pipe left behind at exit
        self.owner = os.getpid()
        return self.process

    def _read_line(self, deadline: float) -> bytes:
        while b"\n" not in self.pending:
            self._read_more(deadline)
        line, _, self.pending = self.pending.partition(b"\n")
        return line

    def _read_exactly(self, length: int, deadline: float) -> bytes:
        while len(self.pending) < length:
            self._read_more(deadline)
        data, self.pending = self.pending[:length], self.pending[length:]
        return data

    def _read_more(self, deadline: float) -> None:
        assert self.process is not None and self.process.stdout is not None
        remaining = deadline - time.monotonic()
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if remaining <= 0 or not selector.select(remaining):
                raise TimeoutError
        chunk = os.read(self.process.stdout.fileno(), 1024 * 1024)
        if not chunk:
            raise EOFError
        self.pending += chunk

    def _died(self, *, out_of_step: bool) -> Exception:
        """Why the child ended: PDFium crashed on the file (a signal), or it could not run (its environment).

        ``out_of_step``: it is alive but said something that is no message; it is killed, not trusted.
        """
        assert self.process is not None
        if out_of_step:
            self.process.kill()
        try:
            code = self.process.wait(timeout=5)  # its output ended: it is on its way out
        except subprocess.TimeoutExpired:
            self.process.kill()
            code, out_of_step = self.process.wait(), True
        complaint = ""
        if self.errors is not None:
            self.errors.seek(0)
            lines = self.errors.read().decode("utf-8", "replace").strip().splitlines()
            complaint = lines[-1] if lines else ""
        self.stop()
        if -code in CRASHES and not out_of_step:  # PDFium crashed on the file, or ran out of memory (killed)
            return RenderError(f"The PDF made the renderer crash (signal {-code}); no preview.")
        return RenderUnavailable(f"The PDF renderer's process failed: {complaint or f'exit status {code}'}")


#: This process's child (one PDF at a time).
CHILD = Child()


def _forked() -> None:
    """In a forked copy of the parent: a lock held by another thread at the fork would never be released."""
    CHILD.lock = threading.Lock()
    CHILD.process, CHILD.pending, CHILD.errors = None, b"", None


os.register_at_fork(after_in_child=_forked)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it (stdin closed, or killed)
    serve(sys.stdin.buffer, sys.stdout.buffer)
