"""How the admin shows where a blob stands in the processing pipeline: badges, tables, download cells.

Shared by the blob and attachment pages and the panel on consumers' pages::

    scan_badge(blob)            # "infected" in white on red (with the threat found); "pending", ...
    states(blob)                # the scan over the analysis, for a list column
    download_refusal(blob)      # None if the download URL would serve it; else why it would not
    metadata_table(blob)        # what the upload and the analyzers recorded, key by key

Whether a download is offered is decided by the same rule the download views
apply (:func:`~django_attachments.policy.check_servable`): the pages never
offer what the view would refuse with a 409. Styles are inline, with the
admin's colour variables where it has them, so that a project's own admin
templates need not include anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _

from ..exceptions import BlobUnavailable, Quarantined, ScanFailed
from ..models import AnalysisState, Blob, ScanState
from ..policy import check_servable

_BADGE = "display: inline-block; padding: 1px 6px; border-radius: 4px; white-space: nowrap; "
#: Per scan state: the inline style of its badge. Infected stands out; clean and not scanned stay quiet.
SCAN_STYLES: dict[Any, str] = {
    ScanState.INFECTED: _BADGE + "background: var(--error-fg, #ba2121); color: #fff; font-weight: bold;",
    ScanState.FAILED: _BADGE + "background: var(--message-warning-bg, #ffc); color: var(--body-fg, #333);",
    ScanState.PENDING: _BADGE + "background: var(--message-warning-bg, #ffc); color: var(--body-fg, #333);",
    ScanState.CLEAN: _BADGE + "background: var(--message-success-bg, #dfd); color: var(--body-fg, #333);",
    ScanState.NOT_SCANNED: "color: var(--body-quiet-color, #666);",
}
ANALYSIS_STYLES: dict[Any, str] = {
    AnalysisState.FAILED: _BADGE + "background: var(--message-warning-bg, #ffc); color: var(--body-fg, #333);",
    AnalysisState.PENDING: "color: var(--body-quiet-color, #666); font-style: italic;",
    AnalysisState.ANALYZED: "",
    AnalysisState.NOT_ANALYZED: "color: var(--body-quiet-color, #666);",
}
_QUIET = "color: var(--body-quiet-color, #666);"
_WRAP = "overflow-wrap: anywhere;"


def _label(choices: Any, value: str) -> str:
    try:
        return str(choices(value).label)
    except ValueError:  # a state this version does not know: shown as stored
        return value


def scan_badge(blob: Blob, *, signature: bool = False) -> SafeString:
    """The blob's scan state as a badge (class ``attachments-scan-<state>``); with ``signature``, the threat found."""
    state = blob.scan_state
    badge = format_html(
        '<span class="attachments-scan attachments-scan-{}" style="{}">{}</span>',
        state,
        SCAN_STYLES.get(state, ""),
        _label(ScanState, state),
    )
    if signature and state == ScanState.INFECTED and blob.scan_signature:
        short = Truncator(blob.scan_signature).chars(40)
        return format_html(
            '{} <span class="attachments-scan-signature" title="{}" style="{}">{}</span>',
            badge,
            blob.scan_signature,
            _WRAP,
            short,
        )
    return badge


def analysis_badge(blob: Blob) -> SafeString:
    """The blob's analysis state (class ``attachments-analysis-<state>``); a failure stands out."""
    state = blob.analysis_state
    return format_html(
        '<span class="attachments-analysis attachments-analysis-{}" style="{}">{}</span>',
        state,
        ANALYSIS_STYLES.get(state, ""),
        _label(AnalysisState, state),
    )


def states(blob: Blob) -> SafeString:
    """Scan (with the threat found) over analysis, in one narrow list cell."""
    return format_html(
        '<div style="margin-bottom: 2px;">{}</div><div>{}</div>', scan_badge(blob, signature=True), analysis_badge(blob)
    )


def download_refusal(blob: Blob) -> BlobUnavailable | None:
    """Why the download views would refuse the blob (quarantined, scan pending), or None if they serve it."""
    try:
        check_servable(blob)
    except BlobUnavailable as exc:
        return exc
    return None


def refusal_label(refusal: BlobUnavailable) -> str:
    """A few words for where the download link would be: quarantined, scan failed (for good), awaiting scan."""
    if isinstance(refusal, Quarantined):
        return str(_("quarantined"))
    if isinstance(refusal, ScanFailed):
        return str(_("scan failed"))
    return str(_("awaiting scan"))


def no_download(refusal: BlobUnavailable, *, text: str | None = None) -> SafeString:
    """What stands where a download link would: ``text`` (else a quiet word), the reason in its tooltip."""
    return format_html(
        '<span class="attachments-no-download" title="{}" style="{}">{}</span>',
        refusal.public_detail or str(refusal),
        _QUIET,
        refusal_label(refusal) if text is None else text,
    )


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def key_value_table(rows: Iterable[tuple[Any, ...]], *, headers: tuple[str, ...], css_class: str) -> SafeString:
    """A small read-only table: a header row, then one row per tuple, the first cell a row header."""
    rows = list(rows)
    if not rows:
        return format_html('<span style="{}">{}</span>', _QUIET, _("none"))
    head = format_html_join("", '<th scope="col">{}</th>', ((header,) for header in headers))
    body = format_html_join(
        "",
        '<tr><th scope="row">{}</th>{}</tr>',
        (
            (
                first,
                format_html_join("", '<td style="{}">{}</td>', ((_WRAP, _value(cell)) for cell in rest)),
            )
            for first, *rest in rows
        ),
    )
    return format_html('<table class="{}"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>', css_class, head, body)


def metadata_rows(metadata: dict[str, Any]) -> list[tuple[str, Any]]:
    """The metadata's keys in reading order: the upload's own (no dot) first, then the analyzers' (``image.width``)."""
    return sorted(metadata.items(), key=lambda item: ("." in item[0], item[0]))


def metadata_table(blob: Blob) -> SafeString:
    """What the upload and the analyzers recorded about the file, key by key."""
    metadata = blob.metadata if isinstance(blob.metadata, dict) else {}
    return key_value_table(
        metadata_rows(metadata), headers=(str(_("key")), str(_("value"))), css_class="attachments-metadata"
    )


def analysis_errors_table(blob: Blob) -> SafeString:
    """Per analyzer that refused the file: its error code and message."""
    errors = blob.analysis_errors if isinstance(blob.analysis_errors, dict) else {}
    rows = [
        (name, error.get("code", ""), error.get("detail", "")) if isinstance(error, dict) else (name, "", error)
        for name, error in sorted(errors.items())
    ]
    return key_value_table(
        rows, headers=(str(_("analyzer")), str(_("code")), str(_("detail"))), css_class="attachments-analysis-errors"
    )
