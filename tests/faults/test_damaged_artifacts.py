"""Issue 10, items 6, 8 and 10: artifacts are written whole or not at all, and a damaged
one (a truncated metrics.json, a meta.json cut short or ``{}``) is one line naming the
file and how to rebuild it; one locked or broken collection does not hide the others."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers.viewer import one_line_error
from typer.testing import CliRunner

from retrieval.index import open_index
from search.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def query_gallery(root: Path) -> Path:
    root.mkdir(parents=True)
    titles = ["red shoe", "blue shirt", "green hat", "black bag", "white sock", "grey coat"]
    gallery = [{"id": f"g{i}", "title": t} for i, t in enumerate(titles)]
    queries = [
        {"id": f"q{i}", "title": t + " new", "matches": [f"g{i}"], "split": s}
        for i, (t, s) in enumerate(zip(titles, ["test", "test", "test", "valid", "valid", "valid"]))
    ]
    (root / "gallery.jsonl").write_text("".join(json.dumps(r) + "\n" for r in gallery))
    (root / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries))
    return root


def test_truncated_cell_metrics_are_one_line_and_the_cell_runs_again(tmp_path, caplog):
    data = query_gallery(tmp_path / "qg")
    grid = tmp_path / "grid.toml"
    grid.write_text(f'[grid]\ndataset = "{data}"\nencoders = [["sparse"]]\nk = [3, 5]\n')
    out = tmp_path / "out"
    first = runner.invoke(app, ["ablate", str(grid), "--out", str(out)])
    assert first.exit_code == 0, first.output
    cells = sorted((out / "cells").iterdir())
    damaged = cells[0] / "metrics.json"
    good = json.loads(damaged.read_text())
    damaged.write_text(damaged.read_text()[:25])  # a kill mid-write, before atomic writes
    again = runner.invoke(app, ["ablate", str(grid), "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert "Traceback" not in again.output
    text = " ".join(again.output.split())
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert [w for w in warnings if w.startswith(f"damaged file {damaged}")]
    assert any("running this cell again" in w and "\n" not in w for w in warnings)
    assert "[ran]" in text and "[cached]" in text  # only the damaged cell ran again
    rerun = json.loads(damaged.read_text())  # whole again; the same scores (timings differ)
    assert {k: v for k, v in rerun.items() if "recall" in k or "mrr" in k} == {
        k: v for k, v in good.items() if "recall" in k or "mrr" in k
    }


def test_artifacts_are_never_written_in_place():
    """Every file the application writes goes through retrieval.atomic (temp + rename)."""
    offenders = []
    pattern = re.compile(r"\.write_text\(|\.write_bytes\(|open\([^)]*[\"']w|savefig\(path")
    for package in ("search", "retrieval"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name in ("atomic.py", "failure_log.py") or "synth" in path.name:
                continue
            for lineno, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line) and "atomic_open" not in line:
                    offenders.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert offenders == []


@pytest.fixture
def two_collections(tmp_path):
    home = tmp_path / "home"
    for name in ("good", "bad"):
        catalog = tmp_path / f"{name}.jsonl"
        catalog.write_text(json.dumps({"id": "a", "title": f"{name} shoe"}) + "\n")
        res = runner.invoke(app, ["index", str(catalog), "-e", "sparse", "--data-dir", str(home)])
        assert res.exit_code == 0, res.output
    return home


@pytest.mark.parametrize("content", ['{"vectors": [{"na', "{}", "", "\xff\xfe"])
def test_damaged_meta_json_is_one_line_and_hides_nothing(two_collections, tmp_path, content):
    home = two_collections
    meta = home / "edge" / "bad" / "meta.json"
    meta.write_bytes(content.encode("latin-1"))
    flags = ["--data-dir", str(home)]
    res = runner.invoke(app, ["collections", "--json", *flags])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.output.splitlines()[-1])}
    assert rows["good"]["points"] == 1 and "error" not in rows["good"]
    assert f"damaged file {meta}" in rows["bad"]["error"] and "--recreate" in rows["bad"]["error"]
    line = one_line_error(runner.invoke(app, ["query", "shoe", "-c", "bad", *flags]), 1)
    assert "damaged file" in line and "--recreate" in line
    catalog = tmp_path / "bad.jsonl"
    line = one_line_error(runner.invoke(app, ["index", str(catalog), "-e", "sparse", *flags]), 1)
    assert "damaged file" in line
    # the fix the message names works
    res = runner.invoke(app, ["index", str(catalog), "-e", "sparse", "--recreate", *flags])
    assert res.exit_code == 0, res.output


def test_a_locked_collection_does_not_hide_the_others(two_collections):
    home = two_collections
    holder = open_index("edge", data_dir=home)
    holder.info("bad")  # holds the shard open, as a running `search index` would
    try:
        res = runner.invoke(app, ["collections", "--json", "--data-dir", str(home)])
        assert res.exit_code == 0, res.output
        rows = {r["name"]: r for r in json.loads(res.output.splitlines()[-1])}
        assert rows["good"]["points"] == 1
        assert "open in another process" in rows["bad"]["error"]
        table = runner.invoke(app, ["collections", "--data-dir", str(home)])
        assert table.exit_code == 0 and "good" in table.output and "Traceback" not in table.output
    finally:
        holder.close()


def test_viewer_reports_a_damaged_run_in_one_line_and_lists_the_others(tmp_path):
    from retrieval.atomic import DamagedFile
    from search.web.runs import RunBrowser, find_runs

    for name in ("ok", "cut"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "settings.json").write_text('{"dataset": "d"}')
        (folder / "metrics.json").write_text('{"stage1/recall@10": 1.0}')
    (tmp_path / "cut" / "settings.json").write_text('{"data')
    assert [r["path"] for r in find_runs(tmp_path)] == ["ok"]
    with pytest.raises(DamagedFile, match=r"damaged file .*settings.json .*re-run the evaluation"):
        RunBrowser(tmp_path).load("cut")
