"""Render the documentation's diagrams to SVG from a small YAML description, with no browser and no CDN.

    .venv/bin/python docs/tools/svg_diagrams.py docs/diagrams/upload-flow.yml > /tmp/upload-flow.svg

``mkdocs build`` runs this through ``docs/tools/diagrams_hook.py``: every ``docs/diagrams/NAME.yml``
becomes ``diagrams/NAME.svg`` in the site. Two kinds of diagram:

``kind: flow`` -- boxes on a grid and arrows between them (flows, state diagrams)::

    nodes:
      - {id: api, at: [0, 0], style: step, title: "API view", lines: ["`POST /api/attachments/`"]}
      - {id: done, at: [0, 1], style: end, title: "201"}
    edges:
      - {from: api, to: done, label: "valid"}

``kind: sequence`` -- participants, and messages between them in order::

    participants:
      - {id: client, title: "Client"}
      - {id: api, title: "API"}
    steps:
      - {section: "1. Start"}
      - {from: client, to: api, text: ["`POST attachments/uploads/`"]}
      - {from: api, to: client, text: "201 ticket", reply: true}
      - {note: "the ticket is pending", over: [api]}

Text between backticks is set in a monospace font, as code is in the pages. Widths are estimated
from the characters (no font is measured), with room to spare.
"""

from __future__ import annotations

import html
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

SANS = "-apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
MONO = "'SFMono-Regular', Consolas, Menlo, 'DejaVu Sans Mono', monospace"
TEXT_SIZE = 14
LABEL_SIZE = 13
TITLE_SIZE = 17
LINE_GAP = 1.4  # line height, in font sizes
INK = "#263238"
EDGE = "#455a64"
MARGIN = 20  # around the drawing

# Fill and stroke of each box style.
STYLES = {
    "actor": ("#fff3e0", "#e65100"),
    "step": ("#e8eaf6", "#3949ab"),
    "service": ("#e3f2fd", "#1565c0"),
    "store": ("#e8f5e9", "#2e7d32"),
    "error": ("#ffebee", "#c62828"),
    "state": ("#e8eaf6", "#3949ab"),
    "end": ("#eceff1", "#455a64"),
    "note": ("#fffde7", "#f9a825"),
}
EDGE_STYLES = {"normal": (EDGE, ""), "error": ("#c62828", "6 4"), "dashed": (EDGE, "6 4")}

NARROW = set("iljtfr.,:;|!'()[]{} ")
WIDE = set("mwMW@%")


def text_width(text: str, size: float) -> float:
    """An upper estimate of the width of a line with `code` spans, in pixels."""
    width = 0.0
    for mono, chunk in segments(text):
        if mono:
            width += len(chunk) * 0.61 * size
            continue
        for char in chunk:
            if char in NARROW:
                width += 0.3 * size
            elif char in WIDE or char.isupper():
                width += 0.72 * size
            else:
                width += 0.54 * size
    return width


def segments(text: str) -> list[tuple[bool, str]]:
    """Split a line into (is_code, text) runs at its backticks."""
    parts = text.split("`")
    return [(index % 2 == 1, part) for index, part in enumerate(parts) if part]


def as_lines(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.split("\n")
    return [str(line) for line in value]


def text_element(x: float, y: float, line: str, *, size: float, anchor: str = "middle", weight: str = "") -> str:
    """One line of text, its `code` spans in the monospace font."""
    spans = []
    for mono, chunk in segments(line):
        family = f' font-family="{MONO}"' if mono else ""
        spans.append(f"<tspan{family}>{escape(chunk)}</tspan>")
    bold = f' font-weight="{weight}"' if weight else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{bold}>{"".join(spans)}</text>'


def text_block(cx: float, top: float, lines: list[str], *, size: float, title: str = "") -> list[str]:
    """Centred lines from ``top``; the title first, in bold."""
    out = []
    y = top + size
    if title:
        out.append(text_element(cx, y, title, size=size + 1, weight="bold"))
        y += (size + 1) * LINE_GAP
    for line in lines:
        out.append(text_element(cx, y, line, size=size))
        y += size * LINE_GAP
    return out


def block_size(lines: list[str], *, size: float, title: str = "") -> tuple[float, float]:
    widths = [text_width(line, size) for line in lines]
    if title:
        widths.append(text_width(title, size + 1) * 1.05)  # bold is wider
    height = len(lines) * size * LINE_GAP + ((size + 1) * LINE_GAP if title else 0)
    return max(widths or [0]), height - (LINE_GAP - 1) * size


def label_with_background(
    cx: float, top: float, lines: list[str], *, anchor: str = "middle", extent: list | None = None
) -> list[str]:
    """Edge label lines over a white box, so a line crossing them does not hide them.

    The box's (left, top, right, bottom) is added to ``extent``, so that the canvas can grow to hold it.
    """
    width, height = block_size(lines, size=LABEL_SIZE)
    left = {"middle": cx - width / 2, "start": cx, "end": cx - width}[anchor]
    if extent is not None:
        extent.append((left - 3, top - 2, left + width + 3, top + height + 4))
    out = [
        f'<rect x="{left - 3:.1f}" y="{top - 2:.1f}" width="{width + 6:.1f}" height="{height + 6:.1f}" fill="#fff" />'
    ]
    y = top + LABEL_SIZE
    for line in lines:
        out.append(text_element(cx, y, line, size=LABEL_SIZE, anchor=anchor))
        y += LABEL_SIZE * LINE_GAP
    return out


def document(width: float, height: float, body: list[str], title: str, extent: list | None = None) -> str:
    """The SVG document: ``width`` x ``height``, grown to hold every box of ``extent`` with a margin."""
    left, top, right, bottom = 0.0, 0.0, width, height
    for box in extent or []:
        left, top = min(left, box[0] - MARGIN), min(top, box[1] - MARGIN)
        right, bottom = max(right, box[2] + MARGIN), max(bottom, box[3] + MARGIN)
    left, top = int(left // 1), int(top // 1)
    width, height = round(right - left), round(bottom - top)
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="{left} {top} {width} {height}" font-family="{SANS}" fill="{INK}" role="img">',
            f"<title>{escape(title)}</title>",
            "<defs>",
            *(
                f'<marker id="arrow-{name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" '
                f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{color}" /></marker>'
                for name, (color, _) in EDGE_STYLES.items()
            ),
            "</defs>",
            f'<rect x="{left}" y="{top}" width="{width}" height="{height}" fill="#fff" />',
            *body,
            "</svg>",
            "",
        ]
    )


def heading(title: str, margin: float) -> tuple[list[str], float]:
    """The diagram's title at the top left, and the height it takes."""
    if not title:
        return [], 0
    return [text_element(margin, margin + TITLE_SIZE, title, size=TITLE_SIZE, anchor="start", weight="bold")], (
        TITLE_SIZE * 2.2
    )


# -- flow: boxes on a grid ------------------------------------------------------------------------------

PAD_X, PAD_Y = 14, 10
COL_GAP, ROW_GAP = 70, 56


@dataclass
class Box:
    id: str
    col: int
    row: int
    title: str
    lines: list[str]
    style: str
    width: float = 0
    height: float = 0
    x: float = 0  # centre
    y: float = 0  # top

    @property
    def bottom(self) -> float:
        return self.y + self.height

    @property
    def left(self) -> float:
        return self.x - self.width / 2

    @property
    def right(self) -> float:
        return self.x + self.width / 2

    @property
    def middle(self) -> float:
        return self.y + self.height / 2


def render_flow(spec: dict) -> str:
    boxes = {}
    for node in spec["nodes"]:
        col, row = node["at"]
        style = node.get("style", "step")
        if style not in STYLES:
            raise ValueError(f"node {node['id']!r}: unknown style {style!r}; one of {', '.join(STYLES)}")
        if node["id"] in boxes:
            raise ValueError(f"node {node['id']!r} is defined twice")
        box = Box(node["id"], col, row, str(node.get("title", "")), as_lines(node.get("lines")), style)
        text_w, text_h = block_size(box.lines, size=TEXT_SIZE, title=box.title)
        box.width = max(text_w + 2 * PAD_X, node.get("min_width", 120))
        box.height = text_h + 2 * PAD_Y
        boxes[box.id] = box
    cols = max(box.col for box in boxes.values()) + 1
    rows = max(box.row for box in boxes.values()) + 1
    col_width = [max([b.width for b in boxes.values() if b.col == c] or [0]) for c in range(cols)]
    row_height = [max([b.height for b in boxes.values() if b.row == r] or [0]) for r in range(rows)]
    col_gap = spec.get("col_gap", COL_GAP)
    row_gap = spec.get("row_gap", ROW_GAP)
    title_parts, title_height = heading(spec.get("title", ""), MARGIN)
    left = MARGIN
    col_x = []
    for width in col_width:
        col_x.append(left + width / 2)
        left += width + col_gap
    top = MARGIN + title_height
    row_y = []
    for height in row_height:
        row_y.append(top)
        top += height + row_gap
    for box in boxes.values():
        box.x = col_x[box.col]
        # Boxes of a row share their vertical centre.
        box.y = row_y[box.row] + (row_height[box.row] - box.height) / 2
    body = list(title_parts)
    labels = []
    extent = []
    for edge in spec.get("edges", []):
        try:
            source, target = boxes[edge["from"]], boxes[edge["to"]]
        except KeyError as missing:
            raise ValueError(f"edge {edge}: no node {missing}") from None
        path, label_at = route(source, target, edge.get("route", "vh"), edge.get("offset", 0))
        kind = edge.get("style", "normal")
        color, dash = EDGE_STYLES[kind]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in path)
        body.append(
            f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="1.6"{dash_attr} '
            f'marker-end="url(#arrow-{kind})" />'
        )
        if edge.get("label"):
            x, y, anchor = label_at
            lines = as_lines(edge["label"])
            if anchor == "middle":
                # Above a horizontal segment.
                y -= block_size(lines, size=LABEL_SIZE)[1] + 6
            else:
                y -= block_size(lines, size=LABEL_SIZE)[1] / 2
            labels += label_with_background(x, y, lines, anchor=anchor, extent=extent)
    for box in boxes.values():
        fill, stroke = STYLES[box.style]
        radius = 14 if box.style in ("state", "end") else 4
        dash = ' stroke-dasharray="5 3"' if box.style == "note" else ""
        body.append(
            f'<rect x="{box.left:.1f}" y="{box.y:.1f}" width="{box.width:.1f}" height="{box.height:.1f}" '
            f'rx="{radius}" fill="{fill}" stroke="{stroke}" stroke-width="1.6"{dash} />'
        )
        body += text_block(box.x, box.y + PAD_Y, box.lines, size=TEXT_SIZE, title=box.title)
    body += labels  # over the boxes and lines
    width = left - col_gap + MARGIN
    height = top - row_gap + MARGIN
    return document(width, height, body, spec.get("title", ""), extent)


def route(source: Box, target: Box, how: str, offset: float = 0):
    """The points of an arrow from ``source`` to ``target``, and where its label goes (x, y, anchor).

    Straight when the boxes share a column or a row (moved aside by ``offset``, so that two arrows
    between the same boxes do not overlap); otherwise an elbow: ``vh`` leaves the source vertically
    and enters the target from the side, ``hv`` the other way round.
    """
    if source.col == target.col:
        x = source.x + offset
        start, end = (source.bottom, target.y) if target.row > source.row else (source.y, target.bottom)
        # The label goes on the outer side of the arrow: left of one moved left.
        label = (x - 8, (start + end) / 2, "end") if offset < 0 else (x + 8, (start + end) / 2, "start")
        return [(x, start), (x, end)], label
    if source.row == target.row:
        y = source.middle + offset
        start, end = (source.right, target.left) if target.col > source.col else (source.left, target.right)
        return [(start, y), (end, y)], ((start + end) / 2, y, "middle")
    going_down = target.row > source.row
    going_right = target.col > source.col
    if how == "hv":
        start = (source.right if going_right else source.left, source.middle)
        corner = (target.x, source.middle)
        end = (target.x, target.y if going_down else target.bottom)
        return [start, corner, end], ((start[0] + corner[0]) / 2, start[1], "middle")
    start = (source.x, source.bottom if going_down else source.y)
    corner = (source.x, target.middle)
    end = (target.left if going_right else target.right, target.middle)
    return [start, corner, end], (source.x + 8, (start[1] + corner[1]) / 2, "start")


# -- sequence: participants and messages ----------------------------------------------------------------

HEAD_GAP = 40  # below the participants' boxes, before the first step
STEP_GAP = 14
SELF_LOOP = 36


def render_sequence(spec: dict) -> str:
    participants = spec["participants"]
    index = {p["id"]: i for i, p in enumerate(participants)}
    heads = []
    for p in participants:
        w, h = block_size(as_lines(p.get("lines")), size=TEXT_SIZE, title=p.get("title", ""))
        heads.append((w + 2 * PAD_X, h + 2 * PAD_Y))
    steps = spec["steps"]

    def span(step) -> tuple[int, int]:
        try:
            ends = [index[step["from"]], index[step["to"]]] if "from" in step else [index[o] for o in step["over"]]
        except KeyError as missing:
            raise ValueError(f"step {step}: no participant {missing}") from None
        return min(ends), max(ends)

    # Each gap between neighbouring lifelines is wide enough for every label that spans it.
    gaps = [spec.get("min_gap", 160)] * (len(participants) - 1)
    for i in range(len(gaps)):
        gaps[i] = max(gaps[i], (heads[i][0] + heads[i + 1][0]) / 2 + 30)
    for step in steps:
        if "section" in step:
            continue
        lo, hi = span(step)
        lines = as_lines(step.get("text") or step.get("note"))
        width = block_size(lines, size=LABEL_SIZE)[0] + 40
        if lo == hi:
            if "note" in step:
                continue
            # A message to itself: its label sits right of the loop, in the next gap.
            if lo < len(gaps):
                gaps[lo] = max(gaps[lo], width + SELF_LOOP)
            continue
        needed = width / (hi - lo)
        for i in range(lo, hi):
            gaps[i] = max(gaps[i], needed)
    title_parts, title_height = heading(spec.get("title", ""), MARGIN)
    x = [MARGIN + heads[0][0] / 2]
    for gap in gaps:
        x.append(x[-1] + gap)
    last_self = steps and "from" in steps[-1] and steps[-1]["from"] == steps[-1]["to"]
    right_edge = x[-1] + heads[-1][0] / 2
    notes_right = [
        (x[span(s)[0]] + x[span(s)[1]]) / 2 + block_size(as_lines(s["note"]), size=LABEL_SIZE)[0] / 2 + PAD_X
        for s in steps
        if "note" in s
    ]
    width = max([right_edge, *notes_right]) + MARGIN + (SELF_LOOP if last_self else 0)
    head_top = MARGIN + title_height
    head_height = max(h for _, h in heads)
    y = head_top + head_height + HEAD_GAP
    body = list(title_parts)
    drawn = []
    for step in steps:
        if "section" in step:
            y += 6
            band = f'x="{MARGIN / 2}" y="{y:.1f}" width="{width - MARGIN:.1f}" height="26"'
            drawn.append(f'<rect {band} fill="#eceff1" />')
            drawn.append(
                text_element(MARGIN, y + 18, step["section"], size=LABEL_SIZE + 1, anchor="start", weight="bold")
            )
            y += 26 + STEP_GAP + 10
            continue
        lo, hi = span(step)
        if "note" in step:
            lines = as_lines(step["note"])
            w, h = block_size(lines, size=LABEL_SIZE)
            cx = (x[lo] + x[hi]) / 2
            w = max(w + 2 * PAD_X, x[hi] - x[lo] + 60)
            fill, stroke = STYLES["note"]
            drawn.append(
                f'<rect x="{cx - w / 2:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h + 2 * PAD_Y:.1f}" rx="3" '
                f'fill="{fill}" stroke="{stroke}" stroke-width="1.2" />'
            )
            drawn += text_block(cx, y + PAD_Y, lines, size=LABEL_SIZE)
            y += h + 2 * PAD_Y + STEP_GAP
            continue
        lines = as_lines(step.get("text"))
        _, h = block_size(lines, size=LABEL_SIZE)
        kind = "error" if step.get("style") == "error" else ("dashed" if step.get("reply") else "normal")
        color, dash = EDGE_STYLES[kind]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        source, target = x[index[step["from"]]], x[index[step["to"]]]
        if source == target:
            drawn += label_with_background(source + SELF_LOOP + 8, y, lines, anchor="start")
            top, bottom = y + 4, y + max(h, 18) + 4
            drawn.append(
                f'<polyline points="{source:.1f},{top:.1f} {source + SELF_LOOP:.1f},{top:.1f} '
                f'{source + SELF_LOOP:.1f},{bottom:.1f} {source + 4:.1f},{bottom:.1f}" fill="none" '
                f'stroke="{color}" stroke-width="1.6"{dash_attr} marker-end="url(#arrow-{kind})" />'
            )
            y = bottom + STEP_GAP + 6
            continue
        drawn += label_with_background((source + target) / 2, y, lines)
        y += h + 8
        end = target - 3 if target > source else target + 3
        drawn.append(
            f'<line x1="{source:.1f}" y1="{y:.1f}" x2="{end:.1f}" y2="{y:.1f}" stroke="{color}" '
            f'stroke-width="1.6"{dash_attr} marker-end="url(#arrow-{kind})" />'
        )
        y += STEP_GAP + 8
    bottom = y + 6
    for i, p in enumerate(participants):
        w, h = heads[i]
        fill, stroke = STYLES[p.get("style", "actor")]
        body.append(
            f'<line x1="{x[i]:.1f}" y1="{head_top + h:.1f}" x2="{x[i]:.1f}" y2="{bottom:.1f}" stroke="#90a4ae" '
            'stroke-width="1.4" stroke-dasharray="4 4" />'
        )
        body.append(
            f'<rect x="{x[i] - w / 2:.1f}" y="{head_top:.1f}" width="{w:.1f}" height="{h:.1f}" rx="4" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="1.6" />'
        )
        body += text_block(x[i], head_top + PAD_Y, as_lines(p.get("lines")), size=TEXT_SIZE, title=p.get("title", ""))
    body += drawn
    return document(width, bottom + MARGIN, body, spec.get("title", ""))


RENDERERS = {"flow": render_flow, "sequence": render_sequence}


def render(spec: dict) -> str:
    """The SVG document of one diagram description."""
    kind = spec.get("kind")
    if kind not in RENDERERS:
        raise ValueError(f"unknown diagram kind {kind!r}; one of {', '.join(RENDERERS)}")
    return RENDERERS[kind](spec)


def render_file(path: Path) -> str:
    import yaml  # MkDocs depends on PyYAML

    try:
        return render(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: {error}") from error


def texts(svg: str) -> list[str]:
    """The text lines of a rendered diagram, code spans joined back (for tests and proofreading)."""
    return [html.unescape(re.sub(r"<[^>]+>", "", line)) for line in re.findall(r"<text[^>]*>(.*?)</text>", svg)]


if __name__ == "__main__":
    sys.stdout.write(render_file(Path(sys.argv[1])))
