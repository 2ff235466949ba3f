"""The README and docs/ stay true: size, links, the commands they name, and the generated CLI reference.

Commands are parsed, not run: every ``python -m localizer COMMAND ...`` in a code span or code block
must name an existing command and only options that command has (``-p NAME=...`` a recipe field), and every
``make ...`` only targets and variables that the Makefile defines.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from localizer.cli import build_parser
from localizer.recipe import field_names

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
#: Issue 32: a README a student reads in five minutes.
README_MAX_BYTES = 12 * 1024
MAX_PROSE_LINE = 200

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
SPAN = re.compile(r"`([^`]+)`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _code(text: str) -> list[str]:
    """The code of a Markdown page: each line of its fenced blocks and each inline code span."""
    blocks = [line for block in FENCE.findall(text) for line in block.splitlines()[1:-1]]
    spans = SPAN.findall(FENCE.sub("", text))
    return blocks + [" ".join(span.split()) for span in spans]


def _commands(text: str, program: str) -> list[list[str]]:
    """The token lists of every ``program ...`` command in the code of ``text`` (shell comments cut)."""
    found = []
    for code in _code(text):
        for match in re.finditer(rf"(?:^|[\s;(&|]){re.escape(program)}\s+([^#]*)", code.split(" # ")[0]):
            tokens = re.split(r"[\s\[\]|(),]+", match.group(1).strip())
            found.append([t for t in tokens if t])
    return found


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {_slug(h) for h in re.findall(r"^#+ (.*)$", text, re.M)}


def test_slug_matches_githubs_anchors():
    assert _slug("Numerics, and GPU notes") == "numerics-and-gpu-notes"
    assert _slug("`several-animals`") == "several-animals"
    assert _slug("What a run produces") == "what-a-run-produces"


def test_readme_is_short_and_no_line_outside_code_is_long():
    text = README.read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) <= README_MAX_BYTES
    long = [line[:60] for line in FENCE.sub("", text).splitlines() if len(line) > MAX_PROSE_LINE]
    assert long == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_placeholder_is_left(page):
    """A line that is one upper-case token (``OXFORD_ROWS``) is a template placeholder never filled in."""
    prose = FENCE.sub("", page.read_text(encoding="utf-8"))
    assert re.findall(r"^[A-Z][A-Z0-9]*_[A-Z0-9_]+$", prose, re.M) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(target)
    assert broken == []


def _options(parser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def test_the_command_extraction_finds_commands_and_their_options():
    text = "Run `python -m localizer evaluate --checkpoint RUN/best.pt [--tta | --no-tta]`, then:\n" \
           "```bash\nmake run DATA=x   # a comment --not-an-option\n```\n"
    assert _commands(text, "python -m localizer") == [["evaluate", "--checkpoint", "RUN/best.pt", "--tta", "--no-tta"]]
    assert _commands(text, "make") == [["run", "DATA=x"]]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_localizer_command_named_exists(page):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    recipe_names = set(field_names())
    wrong = []
    for tokens in _commands(page.read_text(encoding="utf-8"), "python -m localizer"):
        if not tokens or tokens[0].isupper() or tokens[0] in ("...", "--help", "-h"):
            continue  # a placeholder (COMMAND) or the top-level help
        if tokens[0] not in sub:
            wrong.append(" ".join(tokens[:2]))
            continue
        options = _options(sub[tokens[0]])
        wrong += [f"{tokens[0]} {t}" for t in tokens[1:] if t.startswith("-") and t.split("=")[0] not in options]
        for flag, value in zip(tokens, tokens[1:]):
            name = value.split("=")[0]
            if flag == "-p" and not name.isupper() and name not in recipe_names:
                wrong.append(f"{tokens[0]} -p {name}")
    assert wrong == []


def _makefile() -> tuple[set[str], set[str]]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([A-Za-z][\w-]*):", text, re.M))
    variables = set(re.findall(r"^([A-Z_]+)\s*[?:]?=", text, re.M)) | set(re.findall(r"\$\(([A-Z_]+)\)", text))
    return targets, variables


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_make_command_named_exists(page):
    targets, variables = _makefile()
    wrong = []
    for tokens in _commands(page.read_text(encoding="utf-8"), "make"):
        for token in (t for t in tokens if t != "..."):
            name = token.split("=")[0]
            if "=" in token and name not in variables or "=" not in token and token not in targets:
                wrong.append(token)
    assert wrong == []


def test_the_cli_reference_matches_the_parser():
    spec = importlib.util.spec_from_file_location("make_cli_doc", ROOT / "docs" / "make_cli_doc.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    current = generator.CLI_DOC.read_text(encoding="utf-8")
    assert current == generator.render(current), "docs/cli.md is stale: run `make docs`"
