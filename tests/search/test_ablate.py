"""``search ablate``: cells, shared collections, resuming a killed grid, the comparison."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

import search.evaluation.evaluate
from retrieval.errors import UsageError
from retrieval.index import open_index
from search.ablation.ablate import load_grid, run_grid
from search.cli import app

ENCODER_SETS = '[["sparse"], ["sparse", "sparse:word,name=words"]]'


def write_grid(tmp_path, dataset, body: str) -> str:
    path = tmp_path / "grid.toml"
    path.write_text(
        f'[store]\ndata_dir = "{tmp_path / "home"}"\n\n[grid]\ndataset = "{dataset}"\n{body}'
    )
    return str(path)


@pytest.fixture
def grid(tmp_path, tiny_set):
    body = f'encoders = {ENCODER_SETS}\nvector = ["sparse", "hybrid"]\nk = [3, 5]\n'
    return load_grid(write_grid(tmp_path, tiny_set, body))


@pytest.fixture
def counted(monkeypatch):
    """Counts the evaluations ablation runs (and can kill the run at the n-th)."""
    calls = {"n": 0, "kill_at": None}
    real = search.evaluation.evaluate.evaluate_dataset

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == calls["kill_at"]:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(search.evaluation.evaluate, "evaluate_dataset", wrapper)
    return calls


def test_grid_runs_every_cell_and_shares_collections(grid, tmp_path, counted):
    result = run_grid(grid, out=tmp_path / "out")
    assert counted["n"] == 8 and all(r["status"] == "ran" for r in result.rows)
    index = open_index("edge", data_dir=tmp_path / "home")
    try:
        assert len(index.collections()) == 2  # one per encoder set, indexed once
    finally:
        index.close()
    for name in ("comparison.md", "comparison.csv", "comparison.png"):
        assert (result.out / name).stat().st_size > 0
    # k is an axis: the stage-1 recall@k cut-offs follow it
    ks = {r["k"]: r["metrics"] for r in result.rows}
    assert "stage1/recall@5" in ks[5] and "stage1/recall@5" not in ks[3]


def test_killed_grid_resumes_without_rerunning_finished_cells(grid, tmp_path, counted):
    counted["kill_at"] = 3
    with pytest.raises(KeyboardInterrupt):
        run_grid(grid, out=tmp_path / "out")
    finished = list((tmp_path / "out" / "cells").glob("*/metrics.json"))
    assert len(finished) == 2
    counted.update(n=0, kill_at=None)
    result = run_grid(grid, out=tmp_path / "out")
    assert counted["n"] == 6
    assert [r["status"] for r in result.rows].count("cached") == 2


def test_best_cell_per_metric_is_marked(grid, tmp_path):
    result = run_grid(grid, out=tmp_path / "out")
    rows = list(csv.DictReader((result.out / "comparison.csv").open()))
    assert len(rows) == 8
    metric = "stage1/recall@1"
    top = max(float(r[metric]) for r in rows)
    for r in rows:
        assert (metric in r["best_for"].split()) == (float(r[metric]) == top)
    md = (result.out / "comparison.md").read_text()
    assert "★" in md and f"**{top:.4f}** ★" in md


def test_a_failing_cell_is_reported_not_fatal(tmp_path, tiny_set):
    body = 'encoders = [["sparse"]]\nvector = ["sparse", "words"]\nk = 5\n'
    result = run_grid(load_grid(write_grid(tmp_path, tiny_set, body)), out=tmp_path / "out")
    status = {r["vector"]: r["status"] for r in result.rows}
    assert status["sparse"] == "ran"
    assert status["words"].startswith("error: unknown vector 'words'")
    assert "error: unknown vector" in (result.out / "comparison.md").read_text()


@pytest.mark.parametrize(
    "body, message",
    [
        ('encoder = [["sparse"]]\n', "unknown grid key 'encoder'; did you mean 'encoders'?"),
        ('encoders = ["sparse"]\n', "encoders must be a list of lists of specs"),
        ("k = [0]\n", "k must be whole numbers >= 1"),
        ("vector = []\n", "grid axis 'vector' is empty"),
    ],
)
def test_bad_grid_files(tmp_path, tiny_set, body, message):
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("?", r"\?")):
        load_grid(write_grid(tmp_path, tiny_set, body))


def test_bad_shared_section_is_caught_before_any_cell(tmp_path, tiny_set):
    path = tmp_path / "g.toml"
    path.write_text(f'[stage2]\nrerank = "none"\n[grid]\ndataset = "{tiny_set}"\n')
    with pytest.raises(
        UsageError, match="unknown config key stage2.rerank; did you mean 'reranker'"
    ):
        load_grid(path)


def test_cli_ablate(tmp_path, tiny_set):
    body = 'encoders = [["sparse"]]\nvector = ["sparse"]\nk = [3, 5]\n'
    res = CliRunner().invoke(
        app, ["ablate", write_grid(tmp_path, tiny_set, body), "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 0, res.output
    assert "comparison:" in res.output and "cell 2/2 [ran]" in res.output
    metrics = json.loads(next((tmp_path / "o" / "cells").glob("*/metrics.json")).read_text())
    assert metrics["queries/evaluated"] == 5
