"""Every `search ...` command line of the README, the docs pages (docs/*.md) and the
Makefile still parses: each command, option and argument is accepted by the CLI
(nothing runs; a user's scripts must not break when the CLI is reorganised)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import typer.main

from search.cli import app

ROOT = Path(__file__).resolve().parents[2]


DOCS = sorted((ROOT / "docs").glob("*.md"))


def commands_in(text: str) -> list[str]:
    """The ``search ...`` lines of a Markdown page (continuations joined, comments cut)."""
    lines = [line.split("#")[0].strip() for line in text.replace("\\\n", " ").splitlines()]
    return [line for line in lines if line.startswith("search ") and "..." not in line]


def command_lines() -> list[str]:
    lines = []
    for page in [ROOT / "README.md", *DOCS]:
        lines += commands_in(page.read_text())
    make = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    lines += [
        "search " + line.split("$(BIN)/search", 1)[1].replace("$(DEMO)", "/tmp/demo").strip()
        for line in make.splitlines()
        if "$(BIN)/search" in line
    ]
    return lines


ROOT_COMMAND = typer.main.get_command(app)


def parse(args: list[str]) -> None:
    """Parse ``search ARGS`` down to the leaf command, raising on what it rejects."""
    cmd, name = ROOT_COMMAND, "search"
    while hasattr(cmd, "resolve_command"):  # a group: pick the sub-command
        ctx = cmd.make_context(name, list(args))
        name, cmd, args = cmd.resolve_command(ctx, [*ctx._protected_args, *ctx.args])
    cmd.make_context(name, list(args))


def test_readme_and_docs_have_command_lines():
    assert len(command_lines()) >= 20
    assert len(DOCS) >= 8, "the docs pages are read"
    assert sum(len(commands_in(page.read_text())) for page in DOCS) >= 20


@pytest.mark.parametrize("line", command_lines())
def test_command_line_parses(line):
    parse(shlex.split(line)[1:])


def test_a_wrong_option_is_caught():
    with pytest.raises(Exception, match="No such option: --bogus"):
        parse(["index", "data", "--bogus", "1"])
