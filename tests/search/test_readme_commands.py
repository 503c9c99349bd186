"""Every `search ...` command line of the README and the Makefile still parses: each
command, option and argument is accepted by the CLI (nothing runs; a user's scripts
must not break when the CLI is reorganised)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import typer.main

from search.cli import app

ROOT = Path(__file__).resolve().parents[2]


def command_lines() -> list[str]:
    readme = (ROOT / "README.md").read_text().replace("\\\n", " ")
    lines = [line.split("#")[0].strip() for line in readme.splitlines()]
    make = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    lines += [
        "search " + line.split("$(BIN)/search", 1)[1]
        for line in make.splitlines()
        if "$(BIN)/search" in line
    ]
    lines = [line.replace("$(DEMO)", "/tmp/demo") for line in lines]
    return [line for line in lines if line.startswith("search ") and "..." not in line]


ROOT_COMMAND = typer.main.get_command(app)


def parse(args: list[str]) -> None:
    """Parse ``search ARGS`` down to the leaf command, raising on what it rejects."""
    cmd, name = ROOT_COMMAND, "search"
    while hasattr(cmd, "resolve_command"):  # a group: pick the sub-command
        ctx = cmd.make_context(name, list(args))
        name, cmd, args = cmd.resolve_command(ctx, [*ctx._protected_args, *ctx.args])
    cmd.make_context(name, list(args))


def test_readme_has_command_lines():
    assert len(command_lines()) >= 20


@pytest.mark.parametrize("line", command_lines())
def test_command_line_parses(line):
    parse(shlex.split(line)[1:])


def test_a_wrong_option_is_caught():
    with pytest.raises(Exception, match="No such option: --bogus"):
        parse(["index", "data", "--bogus", "1"])
