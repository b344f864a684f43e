"""MkDocs hook: render each diagram source, docs/diagrams/NAME.yml, to diagrams/NAME.svg in the site.

The SVG files are made at every build and never committed: the YAML is the diagram. The renderer
is docs/tools/svg_diagrams.py (pure Python, no browser and no CDN).
"""

from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.structure.files import File

sys.path.insert(0, str(Path(__file__).resolve().parent))

import svg_diagrams  # noqa: E402

SOURCES = "diagrams"


def on_files(files, config):
    for source in sorted((Path(config["docs_dir"]) / SOURCES).glob("*.yml")):
        svg = svg_diagrams.render_file(source)
        files.append(File.generated(config, f"{SOURCES}/{source.stem}.svg", content=svg))
    return files
