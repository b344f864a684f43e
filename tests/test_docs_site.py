"""The documentation site, built once as ``make docs`` builds it: offline, highlighted, with its diagrams.

Also the helpers in docs/tools: the fence checker that ``make docs`` runs before the build, and the
diagram renderer the build runs through its hook. Marked slow: the build takes several seconds.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

# The docs extra (make install has it; tox's environments, which test the package, do not).
pytest.importorskip("mkdocs", reason="the docs extra is not installed")
yaml = pytest.importorskip("yaml", reason="the docs extra is not installed")

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS / "tools"))

import check_fences  # noqa: E402
import svg_diagrams  # noqa: E402

pytestmark = pytest.mark.slow

# A <link href> or <script src> that points at another host: the site must work offline.
EXTERNAL_ASSET = re.compile(r"<(?:link|script)\b[^>]*\b(?:href|src)\s*=\s*[\"']?(?:https?:)?//", re.IGNORECASE)


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    site_dir = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return site_dir


def pages(site: Path) -> list[Path]:
    found = sorted(site.rglob("*.html"))
    assert len(found) > 10
    return found


def test_no_asset_from_another_host(site):
    offenders = {
        str(page.relative_to(site)): EXTERNAL_ASSET.findall(page.read_text(encoding="utf-8")) for page in pages(site)
    }
    assert {page: tags for page, tags in offenders.items() if tags} == {}


def test_no_web_fonts(site):
    for page in pages(site):
        assert "fonts.googleapis" not in page.read_text(encoding="utf-8"), page


def test_code_is_highlighted_at_build_time(site):
    html = (site / "concepts" / "index.html").read_text(encoding="utf-8")
    # Pygments' token classes: a keyword ("class", "def", "return") and a name of a class.
    assert '<span class="k">def</span>' in html
    assert '<span class="nc">TreatmentPlanConfig</span>' in html
    assert '<div class="highlight">' in html


def test_no_fence_left_in_the_html(site):
    """A fence the Markdown did not take as one shows up as literal backticks in the page."""
    for page in pages(site):
        assert "```" not in page.read_text(encoding="utf-8"), page


def test_search_index_is_built(site):
    index = json.loads((site / "search" / "search_index.json").read_text(encoding="utf-8"))
    locations = {doc["location"] for doc in index["docs"]}
    assert "diagrams/" in locations
    assert any("ORPHAN_GRACE_PERIOD" in doc["text"] for doc in index["docs"])


def test_diagrams_page_shows_svg_files_that_exist(site):
    page = site / "diagrams" / "index.html"
    sources = re.findall(r'<img [^>]*src="([^"]+\.svg)"', page.read_text(encoding="utf-8"))
    expected = sorted(path.stem for path in (DOCS / "diagrams").glob("*.yml"))
    assert sorted(Path(src).stem for src in sources) == expected
    assert {"upload-flow", "direct-upload", "blob-lifecycle", "upload-tickets"} <= set(expected)
    for src in sources:
        svg = (page.parent / src).read_text(encoding="utf-8")
        assert svg.startswith("<svg ")
        assert svg_diagrams.texts(svg)
    # The sources are not published, only their pictures.
    assert not list((site / "diagrams").glob("*.yml"))


def test_diagrams_page_is_in_the_nav(site):
    assert 'href="diagrams/"' in (site / "index.html").read_text(encoding="utf-8")


# -- the diagrams' text is the docs' text ---------------------------------------------------------------


def diagram_texts() -> list[str]:
    def walk(value):
        if isinstance(value, dict):
            for item in value.values():
                yield from walk(item)
        elif isinstance(value, list):
            for item in value:
                yield from walk(item)
        elif isinstance(value, str):
            yield value

    found = []
    for source in sorted((DOCS / "diagrams").glob("*.yml")):
        found += walk(yaml.safe_load(source.read_text(encoding="utf-8")))
    return found


def test_every_code_name_in_the_diagrams_is_in_the_docs():
    """Names, codes and settings are spelled as the pages spell them (a renamed setting fails here)."""
    docs = "\n".join(page.read_text(encoding="utf-8") for page in DOCS.rglob("*.md") if page.name != "diagrams.md")
    spans = {span for text in diagram_texts() for mono, span in svg_diagrams.segments(text) if mono}
    assert len(spans) > 40
    assert sorted(span for span in spans if span not in docs) == []


@pytest.mark.parametrize(
    "name, texts",
    [
        ("upload-flow", ["store.save()", "403 no_tenant", "409 blob_unavailable", "415 unsupported_file_type"]),
        ("direct-upload", ["PUT upload.url", "410 upload_expired", "no object → 400 upload_missing"]),
        ("blob-lifecycle", ["linked", "orphan", "purged", "stray", "younger than one hour (STRAY_MIN_AGE)"]),
        ("upload-tickets", ["pending", "completed", "failed", "expired", "UPLOAD_EXPIRY after the start"]),
    ],
)
def test_diagram_says(name, texts):
    svg = svg_diagrams.render_file(DOCS / "diagrams" / f"{name}.yml")
    lines = svg_diagrams.texts(svg)
    for text in texts:
        assert any(text in line for line in lines), (text, lines)


def test_renderer_refuses_what_it_cannot_draw():
    with pytest.raises(ValueError, match="unknown diagram kind 'pie'"):
        svg_diagrams.render({"kind": "pie"})
    with pytest.raises(ValueError, match="no node 'b'"):
        svg_diagrams.render({"kind": "flow", "nodes": [{"id": "a", "at": [0, 0]}], "edges": [{"from": "a", "to": "b"}]})
    with pytest.raises(ValueError, match="unknown style 'loud'"):
        svg_diagrams.render({"kind": "flow", "nodes": [{"id": "a", "at": [0, 0], "style": "loud"}]})


def test_renderer_escapes_text_and_sets_code_in_monospace():
    svg = svg_diagrams.render(
        {"kind": "flow", "nodes": [{"id": "a", "at": [0, 0], "title": "a < b & c", "lines": ["call `f()` now"]}]}
    )
    assert "a &lt; b &amp; c" in svg
    assert re.search(r'<tspan font-family="[^"]*monospace">f\(\)</tspan>', svg)
    assert svg_diagrams.texts(svg) == ["a < b & c", "call f() now"]


# -- the fence checker ----------------------------------------------------------------------------------

GOOD = """# A page

Text, then code:

```python
x = 1
```

- a list item with code:

    ```sh
    make docs
    ```

Inline `code` and a ``double`` span are fine.
"""

# The defect the build lets through: the closing fence glued to a sentence.
GLUED_TO_TEXT = """# A page

```python
attachment = services.attach(file)
``` A text-mode file raises `InvalidFile`.

More prose, now inside the code block.

```python
y = 2
```
"""


def test_fence_checker_passes_a_good_file(tmp_path):
    good = tmp_path / "good.md"
    good.write_text(GOOD)
    assert check_fences.check_paths([tmp_path]) == []
    assert check_fences.main([str(tmp_path)]) == 0


def test_fence_checker_flags_a_fence_glued_to_text(tmp_path, capsys):
    broken = tmp_path / "sub" / "broken.md"
    broken.parent.mkdir()
    broken.write_text(GLUED_TO_TEXT)
    assert check_fences.main([str(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{broken}:5: text after the closing fence")
    assert out[1].startswith(f"{broken}:9: fence ```python inside the code block opened at line 3")


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("Prose that raises `InvalidFile`.```\n", 1, "``` inside a line"),
        ("```python\nx = 1\nraise InvalidFile()```\n", 3, "closing fence ``` at the end of a line"),
        ("```python\nx = 1\n", 1, "never closed"),
        ("```python x = 1```\n", 1, "opened and closed on one line"),
    ],
)
def test_fence_checker_flags(text, line, message):
    problems = check_fences.check_text(text, "page.md")
    assert problems, text
    assert problems[0].line == line
    assert message in problems[0].message
    assert str(problems[0]).startswith(f"page.md:{line}: ")


def test_the_docs_have_no_broken_fence():
    assert check_fences.check_paths([DOCS]) == []
