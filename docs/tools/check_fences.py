"""Find code fences in the Markdown pages that do not open or close where their author meant.

    .venv/bin/python docs/tools/check_fences.py docs        # exit status 1, and file:line, for each problem

``mkdocs build --strict`` accepts a fence glued to a sentence: "... raises `InvalidFile`.```" on one
line is no closing fence, so everything down to the next fence renders as one code block, and the
prose after it is lost in it. A fence (three or more backticks or tildes) must stand at the start of
its line (after indentation) and a closing fence must have nothing after it. Reported:

- a run of three backticks inside a line of prose, outside any code block;
- a line inside a code block that starts with its fence but goes on with text, or ends with it (it
  closes nothing), or a second opening fence inside the block;
- a fence opened and closed on one line;
- a code block still open at the end of the file.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

# A fence line: indentation (any: fences inside list items are indented), then the fence, then the rest.
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<rest>.*)$")
INLINE_BACKTICKS = re.compile(r"`{3,}")
# What follows an opening fence: a language, optionally with attributes ("python", "{.py title=x}").
INFO_STRING = re.compile(r"[\w+#.-]+|\{[^}]*\}|[\w+#.-]+ *\{[^}]*\}")


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def check_text(text: str, path: str = "<text>") -> list[Problem]:
    """Return the fence problems of one Markdown text, in line order."""
    problems = []
    open_fence = None  # (fence, line number) of the code block we are in
    for number, line in enumerate(text.splitlines(), start=1):
        match = FENCE.match(line)
        if open_fence is not None:
            fence, opened_at = open_fence
            if match and match["fence"][0] == fence[0] and len(match["fence"]) >= len(fence):
                rest = match["rest"].strip()
                if not rest:
                    open_fence = None
                elif INFO_STRING.fullmatch(rest):
                    problems.append(
                        Problem(
                            path,
                            number,
                            f"fence {match['fence']}{rest} inside the code block opened at line {opened_at}: "
                            "that block was never closed",
                        )
                    )
                else:
                    problems.append(
                        Problem(
                            path,
                            number,
                            f"text after the closing fence {fence} (opened at line {opened_at}): "
                            "it closes nothing, and the rest of the page becomes code; "
                            "put the text on a line of its own",
                        )
                    )
            elif line.rstrip().endswith(fence):
                problems.append(
                    Problem(
                        path,
                        number,
                        f"closing fence {fence} at the end of a line (block opened at line {opened_at}): "
                        "it closes nothing; put it on a line of its own",
                    )
                )
            continue
        if match:
            fence, rest = match["fence"], match["rest"]
            if fence[0] == "`" and "`" in rest:
                problems.append(
                    Problem(path, number, f"fence {fence} opened and closed on one line; put the code on its own lines")
                )
                continue
            open_fence = (fence, number)
            continue
        if INLINE_BACKTICKS.search(line):
            problems.append(
                Problem(
                    path,
                    number,
                    "``` inside a line: a code fence must start its own line "
                    "(glued to a sentence it opens or closes nothing)",
                )
            )
    if open_fence is not None:
        fence, opened_at = open_fence
        problems.append(Problem(path, opened_at, f"code fence {fence} is never closed"))
    return problems


def check_paths(paths: list[Path]) -> list[Problem]:
    """Check each Markdown file, and every ``*.md`` under each directory."""
    problems = []
    for path in paths:
        files = sorted(path.rglob("*.md")) if path.is_dir() else [path]
        for file in files:
            problems += check_text(file.read_text(encoding="utf-8"), str(file))
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    problems = check_paths([Path(arg) for arg in args or ["docs"]])
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} broken code fence(s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
