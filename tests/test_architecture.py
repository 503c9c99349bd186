"""The arrows of ARCHITECTURE.md hold: the import-linter contracts in pyproject.toml
(packages one way, rerank on retrieval's shared vocabulary, search's layers, no import
circle inside a package) pass, and every module of ``search/`` sits in a layer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

pytest.importorskip("importlinter")


def _contracts() -> dict[str, dict]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {c["id"]: c for c in data["tool"]["importlinter"]["contracts"]}


def test_import_contracts_are_kept():
    code = (
        "import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(config_filenames=('pyproject.toml',), no_cache=True, no_logo=True))"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{len(_contracts())} kept, 0 broken" in res.stdout


def test_every_search_module_is_in_a_layer():
    layers = _contracts()["search-layers"]["layers"]
    named = {m.strip() for layer in layers for m in layer.split("|")}
    top = {
        f"search.{p.stem}"
        for p in (ROOT / "search").iterdir()
        if (p.suffix == ".py" and p.stem not in ("__init__", "__main__"))
        or (p.is_dir() and (p / "__init__.py").exists())
    }
    assert top - named == set(), "add these modules to the search-layers contract"


def test_every_cli_command_is_under_80_lines():
    """Commands stay thin (issue 21): parse, build a config, call one function; shared
    options are declared once in cli/options.py. Decorators do not count."""
    import ast

    long = {}
    for path in sorted((ROOT / "search" / "cli").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name.endswith("_cmd"):
                lines = node.end_lineno - node.lineno + 1
                if lines >= 80:
                    long[f"{path.name}:{node.name}"] = lines
    assert long == {}


LONG_MODULES_ALLOWED: set[str] = set()  # none: a module past MAX_LINES is split
MAX_LINES = 300  # STYLE.md 7: files of 80 to 300 lines


def test_every_module_is_at_most_300_lines():
    """Modules of the four packages stay within STYLE.md's size (issue 21): a longer one
    is split along a seam, each part with its own docstring, not cut in half."""
    long = {}
    for package in ("retrieval", "rerank", "training", "search"):
        for path in sorted((ROOT / package).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            lines = len(path.read_text().splitlines())
            if lines > MAX_LINES and name not in LONG_MODULES_ALLOWED:
                long[name] = lines
    assert long == {}, f"split these modules along a seam (at most {MAX_LINES} lines): {long}"
