"""The code blocks of a Markdown page of the docs, and what tests/test_docs_recipes.py does with each.

A block the test runs carries an HTML comment on the line before its fence, which readers never see::

    <!-- test: file notes/models.py -->
    ```python
    ...
    ```

Directives (the first word; the rest is its argument):

- ``file PATH``: write the block to PATH, replacing it; ``append PATH``: add it to the end of PATH;
- ``settings PATH``: add the block to a settings module: a list the module already assigns
  (``INSTALLED_APPS = [...]``) gets the block's new entries, anything else is appended;
- ``sh``: run the block with bash in the project; ``sh background``: start it and leave it running
  (a server); ``sh tty``: run it on a terminal, answering password prompts (``createsuperuser``);
- ``output``: what the previous ``sh`` printed (JSON blocks are compared as JSON, and an entry
  ``"...": "..."`` stands for keys left out);
- ``shell``: run the block with ``python manage.py shell``;
- ``manage``: each line is a ``manage.py`` command, run with ``python`` in front (a listing of flags);
- ``cron``: each line is a crontab entry; its command is run twice with the project's paths, and its
  log must hold one JSON object per line;
- ``skip REASON``: not run, and reported as skipped with REASON.

A block without a directive is illustrative and never run. ``blocks()`` returns the blocks of a page
in order.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
DIRECTIVE = re.compile(r"^\s*<!--\s*test:\s*(?P<action>[\w-]+)\s*(?P<argument>.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    page: str  # relative to docs/
    line: int  # of the opening fence
    lang: str
    code: str
    action: str | None  # None: illustrative, not run
    argument: str

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def blocks(page: str) -> list[Block]:
    """The fenced code blocks of ``docs/<page>``, each with the directive on the line before it."""
    lines = (DOCS / page).read_text().splitlines()
    found = []
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        fence, indent, opened_at = match["fence"], len(match["indent"]), index
        body = []
        index += 1
        while index < len(lines) and lines[index].strip() != fence:
            line = lines[index]
            body.append(line[indent:] if line[:indent].strip() == "" else line.lstrip())
            index += 1
        index += 1  # the closing fence
        directive = DIRECTIVE.match(lines[opened_at - 1]) if opened_at else None
        found.append(
            Block(
                page=page,
                line=opened_at + 1,
                lang=match["info"].strip(),
                code="\n".join(body) + "\n",
                action=directive["action"] if directive else None,
                argument=directive["argument"] if directive else "",
            )
        )
    return found


def merge_settings(module: str, addition: str) -> str:
    """``module`` with ``addition`` added: lists it already assigns get the new entries, the rest is appended."""
    existing = {
        target.id
        for node in ast.parse(module).body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    parts = []
    for node in ast.parse(addition).body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None
        if isinstance(target, ast.Name) and target.id in existing and isinstance(node.value, ast.List):
            parts.append(f"{target.id} += {ast.unparse(node.value)}")
        else:
            parts.append(ast.get_source_segment(addition, node))
    return module.rstrip("\n") + "\n\n" + "\n".join(parts) + "\n"


# What differs from run to run, and what it is replaced with before comparing.
VOLATILE = [
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<uuid>"),
    (re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"), "<datetime>"),
    (re.compile(r"token=[^\"\s]*"), "token=<token>"),  # a signed token, shortened on the page
    (re.compile(r" in \d+\.\d+s\b"), " in <seconds>s"),  # pytest's duration
    (re.compile(r"\b[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{32}\b"), "<object name>"),  # a store's fresh name
    (re.compile(r"\b[0-9a-f]{32}\b"), "<md5>"),  # an S3 ETag
]


def normalise(text: str) -> str:
    text = text.replace("\xa0", " ")  # file sizes are printed with a no-break space
    for pattern, replacement in VOLATILE:
        text = pattern.sub(replacement, text)
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


UUID = VOLATILE[0][0]


def bind_ids(expected: str, actual: str, ids: dict[str, str]) -> None:
    """Record which id of this run each id shown on the page is, in order of appearance, in ``ids``."""
    for shown, real in zip(UUID.findall(expected), UUID.findall(actual), strict=False):
        ids.setdefault(shown, real)


def json_matches(expected, actual, ids: dict[str, str]) -> bool:
    """Whether ``actual`` has ``expected``'s shape and values; ``"...": "..."`` in a dict allows other keys.

    Ids shown on the page are recorded in ``ids`` with the ones of this run in their places."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return False
        keys = set(expected) - {"..."}
        if "..." not in expected and keys != set(actual):
            return False
        return keys <= set(actual) and all(json_matches(expected[key], actual[key], ids) for key in sorted(keys))
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(json_matches(e, a, ids) for e, a in zip(expected, actual, strict=True))
        )
    if isinstance(expected, str) and isinstance(actual, str):
        bind_ids(expected, actual, ids)
        return normalise(expected) == normalise(actual)
    return expected == actual
