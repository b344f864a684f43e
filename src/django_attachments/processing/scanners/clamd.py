"""ClamAV's daemon, ``clamd``, as a scanner: its INSTREAM command over a unix socket or TCP.

::

    scanner = ClamdScanner.from_options({"socket": "/run/clamav/clamd.ctl"})
    # or {"host": "clamav.internal", "port": 3310, "timeout": 5, "chunk_size": 256 * 1024}
    scanner.ping()                            # ScanError unless clamd answers PONG
    scanner.version()                         # "ClamAV 1.4.6/27500/Tue Jan  6 09:27:03 2026"
    with store.open(identifiers) as stream:
        result = scanner.scan(stream.chunks())
    result.clean, result.signature            # (False, "Win.Test.EICAR_HDB-1")

The protocol (``man 8 clamd``): the client sends ``zINSTREAM\\0``, then the
bytes as chunks, each prefixed by its length as a 4-byte big-endian unsigned
integer, then a zero-length chunk; clamd writes them to a temporary file,
scans it and answers one NUL-terminated line: ``stream: OK`` or ``stream:
<signature> FOUND``. The scanner sends one chunk of ``chunk_size`` bytes at a
time from a single buffer, so its memory does not grow with the stream.

clamd takes at most ``StreamMaxLength`` bytes (clamd.conf, 100M by default).
When a chunk would go past it, clamd answers ``INSTREAM size limit exceeded.
ERROR`` at once and closes the connection, while the client may still be
sending: the scanner looks for an early answer after each chunk, reads it
after a failed send too, and raises :class:`~.base.ScanTooLarge`. Whatever
else stops a scan (no daemon, a refused connection, a daemon that stops
reading or answering within ``timeout`` / ``scan_timeout``, any other answer)
raises :class:`~.base.ScanError`; none is ever a clean result.

clamd also has limits on what it scans of a file it took (``MaxFileSize``,
``MaxScanSize``, ...): past them it answers ``stream: OK`` without having
scanned the file, unless ``AlertExceedsMax yes`` makes it answer
``Heuristics.Limits.Exceeded.* FOUND``, which the scanner raises as
:class:`~.base.ScanTooLarge`, never a threat and never clean. Set
``AlertExceedsMax yes`` and those limits at least as high as the largest
upload (docs/processing.md).
"""

from __future__ import annotations

import selectors
import socket
import struct
from dataclasses import dataclass
from typing import Any

from .base import ScanError, Scanner, ScannerOptions, ScanResult, ScanTooLarge, Stream, iter_chunks

#: Bytes of a chunk's length prefix.
HEADER = 4
#: The largest chunk the scanner sends; larger ones only cost memory.
MAX_CHUNK_SIZE = 16 * 1024 * 1024
#: The longest answer read from clamd; a longer one is not clamd's.
MAX_REPLY = 4096
#: How clamd (with ``AlertExceedsMax yes``) names a file it did not scan whole.
LIMITS_EXCEEDED = "Heuristics.Limits.Exceeded"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_positive_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


@dataclass(frozen=True)
class ClamdOptions(ScannerOptions):
    """Where clamd listens, how long to wait and in what chunks to send; ``socket``, or ``host`` and ``port``."""

    #: Path of clamd's unix socket (its ``LocalSocket``).
    socket: str | None = None
    #: Host of clamd's TCP socket (its ``TCPAddr``), when not on a unix socket.
    host: str | None = None
    #: Port of clamd's TCP socket (its ``TCPSocket``).
    port: int = 3310
    #: Seconds connecting, and each send or receive of the stream, may take.
    timeout: float = 10.0
    #: Seconds clamd may take to answer once the stream is sent (it scans then;
    #: its own ``MaxScanTime`` is 120 s by default).
    scan_timeout: float = 180.0
    #: Bytes per INSTREAM chunk, the most of the stream the scanner holds at a time.
    chunk_size: int = 64 * 1024

    def problems(self) -> dict[str, str]:
        found = {}
        if self.socket is None and self.host is None:
            found["socket"] = "the path of clamd's unix socket (or set 'host' and 'port' instead)"
        if self.socket is not None and (not isinstance(self.socket, str) or not self.socket):
            found["socket"] = "the path of clamd's unix socket"
        if self.host is not None:
            if self.socket is not None:
                found["host"] = "None when 'socket' is set (clamd is reached at one address)"
            elif not isinstance(self.host, str) or not self.host:
                found["host"] = "a host name or IP address"
        if not _is_int(self.port) or not 1 <= self.port <= 65535:
            found["port"] = "a TCP port number from 1 to 65535"
        if not _is_positive_number(self.timeout):
            found["timeout"] = "a number of seconds > 0"
        if not _is_positive_number(self.scan_timeout):
            found["scan_timeout"] = "a number of seconds > 0"
        if not _is_int(self.chunk_size) or not 1 <= self.chunk_size <= MAX_CHUNK_SIZE:
            found["chunk_size"] = f"an integer from 1 to {MAX_CHUNK_SIZE} (16 MiB)"
        return found


class ClamdScanner(Scanner):
    """Scans streams with a running clamd; see the module's docstring."""

    name = "clamd"
    options_class = ClamdOptions
    options: ClamdOptions

    @property
    def address(self) -> str:
        """Where clamd is reached, for messages: ``unix:/path`` or ``host:port``."""
        if self.options.socket is not None:
            return f"unix:{self.options.socket}"
        host = self.options.host or ""
        return f"[{host}]:{self.options.port}" if ":" in host else f"{host}:{self.options.port}"

    # -- commands ----------------------------------------------------------------

    def ping(self) -> None:
        """Return if clamd answers PING with PONG; raise :class:`ScanError` saying why otherwise."""
        reply = self._command(b"PING")
        if reply != "PONG":
            raise ScanError(f"clamd at {self.address} answered PING with {reply!r}, not 'PONG'.")

    def version(self) -> str:
        """clamd's answer to VERSION: its version and its signatures' (``ClamAV 1.4.6/27500/<date>``)."""
        reply = self._command(b"VERSION")
        if not reply.startswith("ClamAV "):
            raise ScanError(f"clamd at {self.address} answered VERSION with {reply!r}.")
        return reply

    def scan(self, stream: Stream) -> ScanResult:
        """Send every chunk of ``stream`` to clamd and return its verdict; :class:`ScanError` when there is none.

        Errors of the stream itself (a storage failing mid-read) propagate unchanged.
        """
        chunk_size = self.options.chunk_size
        # One buffer for the whole stream: a chunk's length, its bytes, and room
        # for the zero-length terminator, so that the last chunk and the end go
        # out in one send.
        frame = bytearray(HEADER + chunk_size + HEADER)
        view = memoryview(frame)
        size = filled = 0
        with self._connect() as sock, selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ)
            self._send(sock, b"zINSTREAM\0", size)
            for chunk in iter_chunks(stream, chunk_size):
                data = memoryview(chunk).cast("B")
                while data:
                    take = min(len(data), chunk_size - filled)
                    view[HEADER + filled : HEADER + filled + take] = data[:take]
                    filled += take
                    data = data[take:]
                    if filled == chunk_size:
                        struct.pack_into(">I", frame, 0, filled)
                        self._send(sock, view[: HEADER + filled], size)
                        size += filled
                        filled = 0
                        # clamd answers before the end only to refuse the stream
                        # (over StreamMaxLength): stop sending what it no longer reads.
                        if selector.select(0):
                            raise self._refusal(self._last_words(sock), size)
            struct.pack_into(">I", frame, 0, filled)
            struct.pack_into(">I", frame, HEADER + filled, 0)
            # A last chunk and the terminator, or the terminator alone.
            self._send(sock, view[: HEADER + filled + HEADER] if filled else view[:HEADER], size)
            size += filled
            try:
                reply = self._read_reply(sock, timeout=self.options.scan_timeout)
            except TimeoutError:
                raise ScanError(
                    f"clamd at {self.address} gave no verdict within {self.options.scan_timeout} s "
                    f"of the stream's end ({size} bytes)."
                ) from None
            except OSError as exc:
                raise ScanError(f"clamd at {self.address} failed to answer the scan of {size} bytes: {exc}") from exc
        return self._verdict(reply, size)

    # -- the protocol --------------------------------------------------------------

    def _connect(self) -> socket.socket:
        options = self.options
        try:
            if options.socket is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.settimeout(options.timeout)
                    sock.connect(options.socket)
                except BaseException:
                    sock.close()
                    raise
                return sock
            return socket.create_connection((options.host, options.port), timeout=options.timeout)
        except TimeoutError:
            raise ScanError(
                f"clamd at {self.address} did not accept a connection within {options.timeout} s."
            ) from None
        except OSError as exc:
            raise ScanError(f"Cannot reach clamd at {self.address}: {exc.strerror or exc}.") from exc

    def _command(self, command: bytes) -> str:
        with self._connect() as sock:
            try:
                sock.sendall(b"z" + command + b"\0")
                return self._read_reply(sock)
            except TimeoutError:
                raise ScanError(
                    f"clamd at {self.address} did not answer {command.decode()} within {self.options.timeout} s."
                ) from None
            except OSError as exc:
                raise ScanError(f"clamd at {self.address} failed to answer {command.decode()}: {exc}") from exc

    def _send(self, sock: socket.socket, data: bytes | memoryview, size: int) -> None:
        """Send ``data`` after ``size`` bytes of the stream; a failure is a :class:`ScanError`."""
        try:
            sock.sendall(data)
        except TimeoutError:
            raise ScanError(
                f"clamd at {self.address} took no more of the stream for {self.options.timeout} s, "
                f"after {size} bytes; nothing was scanned."
            ) from None
        except OSError as exc:
            # clamd closed the connection mid-stream; it answered first if it refused the size.
            raise self._refusal(self._last_words(sock), size, exc) from exc

    def _last_words(self, sock: socket.socket) -> str:
        """What clamd answered before closing the connection, or "" if nothing can be read."""
        try:
            return self._read_reply(sock, timeout=min(self.options.timeout, 1.0))
        except (OSError, ScanError):
            return ""

    def _read_reply(self, sock: socket.socket, timeout: float | None = None) -> str:
        """One NUL-terminated answer (or what came before the connection closed), without the NUL."""
        sock.settimeout(self.options.timeout if timeout is None else timeout)
        data = bytearray()
        while b"\0" not in data:
            part = sock.recv(MAX_REPLY)
            if not part:
                break
            data += part
            if len(data) > MAX_REPLY:
                raise ScanError(
                    f"clamd at {self.address} answered more than {MAX_REPLY} bytes: {bytes(data[:80])!r}..."
                )
        return data.split(b"\0", 1)[0].decode("utf-8", "replace").strip()

    def _verdict(self, reply: str, size: int) -> ScanResult:
        if reply == "stream: OK":
            return ScanResult(clean=True, signature=None, scanner=self.name, size=size, detail=reply)
        if reply.startswith("stream: ") and reply.endswith(" FOUND"):
            signature = reply[len("stream: ") : -len(" FOUND")].strip()
            if signature.startswith(LIMITS_EXCEEDED):
                # AlertExceedsMax: clamd read the stream but did not scan all of it (over MaxFileSize,
                # MaxScanSize, ...). Not a threat, and not clean either.
                raise ScanTooLarge(
                    f"clamd at {self.address} did not scan all of the {size} bytes ({signature}): the file is "
                    "over one of its limits (MaxFileSize, MaxScanSize, ...; clamd.conf); it is not scanned."
                )
            if signature:
                return ScanResult(clean=False, signature=signature, scanner=self.name, size=size, detail=reply)
        raise self._refusal(reply, size)

    def _refusal(self, reply: str, size: int, exc: OSError | None = None) -> ScanError:
        """The error for an answer that is no verdict (``reply``), or none at all (``""``)."""
        if "size limit exceeded" in reply:
            return ScanTooLarge(
                f"clamd at {self.address} refused the stream after {size} bytes ({reply!r}): it is larger than "
                "clamd's StreamMaxLength (clamd.conf); nothing was scanned."
            )
        if reply:
            return ScanError(f"clamd at {self.address} answered {reply!r} after {size} bytes, which is not a verdict.")
        return ScanError(
            f"clamd at {self.address} closed the connection after {size} bytes of the stream without an answer"
            + (f" ({exc})" if exc else "")
            + ": it stopped, or the stream is larger than its StreamMaxLength; nothing was scanned."
        )
