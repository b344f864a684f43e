"""A render counter for the variants benchmark: ``ImageRenderer`` that logs every render it makes.

The served project's only renderer (:mod:`suite.variants_settings`). Each
call of :meth:`CountingImageRenderer.render` renders exactly as the package's
``ImageRenderer`` does (same name and version, hence the same variant
digests), then appends one JSON line to the file ``BENCH_RENDER_LOG`` names
-- the process, the spec's output fields, when the render began and ended,
whether it succeeded -- with one ``O_APPEND`` write, so lines from several
server workers and task workers never mix. The benchmark counts the lines:
the number of renders, whoever made them.
"""

from __future__ import annotations

import json
import os
import time
from typing import IO

from django_attachments.processing.renderers import ImageRenderer, Rendered, VariantSpec


class CountingImageRenderer(ImageRenderer):
    def render(self, stream: IO[bytes], spec: VariantSpec) -> Rendered:
        started, ok = time.time(), False
        try:
            rendered = super().render(stream, spec)
            ok = True
            return rendered
        finally:
            line = {"pid": os.getpid(), "spec": spec.output(), "started": started, "ended": time.time(), "ok": ok}
            fd = os.open(os.environ["BENCH_RENDER_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, (json.dumps(line) + "\n").encode())
            finally:
                os.close(fd)
