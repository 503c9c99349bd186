"""``search match`` flags bounded where they are declared, NaN refused (issue 23, case
11), and ``--out`` checked before the work starts (case 14, ``search match`` and
``search eval``): each is a usage error of one line naming the flag, exit 2, and the job
is never started (a 20-digit ``--k`` was an OverflowError traceback; ``--group-cap -5``,
``--threshold sparse=nan`` and ``--min2 nan`` were accepted; an ``--out`` naming a file
failed with a traceback after all the work).
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import search.evaluation.evaluate
import search.match.job
from search.cli import app

runner = CliRunner()


@pytest.fixture
def started(monkeypatch):
    """The jobs replaced by a recorder: a refused command never reaches them."""
    calls: list[str] = []

    def job(name):
        def run(*_a, **_k):
            calls.append(name)
            raise AssertionError(f"{name} started")

        return run

    monkeypatch.setattr(search.match.job, "match_dataset", job("match"))
    monkeypatch.setattr(search.evaluation.evaluate, "evaluate_dataset", job("eval"))
    return calls


@pytest.fixture
def catalogue(tmp_path, monkeypatch):
    monkeypatch.setenv("SEARCH_HOME", str(tmp_path / "home"))
    path = tmp_path / "shop.jsonl"
    rows = [{"id": f"p{i}", "title": f"red shoe {i}", "group": f"g{i % 3}"} for i in range(6)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def refused(args, option, started):
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert "Traceback" not in res.output and option in res.output, res.output
    assert started == []
    return res


@pytest.mark.parametrize(
    ("flags", "option"),
    [
        (["--k", "12345678901234567890"], "--k"),
        (["--k", "0"], "--k"),
        (["--k", "-4"], "--k"),
        (["--group-cap", "-5"], "--group-cap"),
        (["--group-cap", "99999999999999999999"], "--group-cap"),
        (["--inb", "4"], "--inb"),
        (["--inb", "-1"], "--inb"),
        (["--min2", "nan"], "--min2"),
        (["--min2", "inf"], "--min2"),
        (["--min2", "-inf"], "--min2"),
        (["--threshold", "sparse=nan"], "--threshold"),
        (["--threshold", "sparse=inf"], "--threshold"),
        (["--threshold", "sparse=-Infinity"], "--threshold"),
    ],
)
def test_match_flags_are_bounded_and_finite(catalogue, started, tmp_path, flags, option):
    args = ["match", str(catalogue), "--out", str(tmp_path / "o")]
    if "--threshold" not in flags:
        args += ["--threshold", "sparse=0.5"]
    refused([*args, *flags], option, started)


def test_blend_nan_is_refused(catalogue, started):
    refused(["eval", str(catalogue), "--blend", "nan"], "--blend", started)


def test_good_flags_reach_the_job(catalogue, started, tmp_path):
    args = ["match", str(catalogue), "-t", "sparse=0.5", "--min2", "0.2", "--group-cap", "3"]
    res = runner.invoke(app, [*args, "--k", "5", "--inb", "1", "--out", str(tmp_path / "o")])
    assert started == ["match"], res.output


@pytest.mark.parametrize("command", ["match", "eval"])
@pytest.mark.parametrize("where", ["file", "under-file"])
def test_out_naming_a_file_is_refused_before_the_work(catalogue, started, tmp_path, command, where):
    taken = tmp_path / "taken.txt"
    taken.write_text("mine\n")
    out = taken if where == "file" else taken / "run"
    args = [command, str(catalogue), "--out", str(out)]
    if command == "match":
        args += ["--threshold", "sparse=0.5"]
    res = refused(args, "--out", started)
    assert str(taken) in res.output and taken.read_text() == "mine\n"
    assert len([line for line in res.output.splitlines() if line.strip()]) == 1, res.output


def test_eval_out_from_the_config_is_checked_too(catalogue, started, tmp_path):
    taken = tmp_path / "taken.txt"
    taken.write_text("mine\n")
    cfg = tmp_path / "search.toml"
    cfg.write_text(f'[eval]\nout = "{taken}"\n')
    refused(["eval", str(catalogue), "--config", str(cfg)], "eval.out", started)


def test_out_naming_a_file_end_to_end_is_one_line(catalogue, tmp_path):
    """Without the recorder: the real job, refused before it indexes anything."""
    taken = tmp_path / "taken.txt"
    taken.write_text("mine\n")
    res = runner.invoke(app, ["match", str(catalogue), "-t", "sparse=0.5", "--out", str(taken)])
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert "is a file" in res.output and not (tmp_path / "home").exists()


@pytest.mark.parametrize("command", ["match", "eval"])
def test_a_runs_file_in_the_way_of_the_default_folder_is_refused(
    catalogue, started, tmp_path, monkeypatch, command
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").write_text("mine\n")
    args = [command, str(catalogue)] + (["-t", "sparse=0.5"] if command == "match" else [])
    res = refused(args, "runs", started)
    assert "default folder" in res.output and (tmp_path / "runs").read_text() == "mine\n"
