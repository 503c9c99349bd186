"""Model files are verified before LightGBM parses them (issue 23, cases 1 and 2).

A truncated or edited LightGBM text model crashes LightGBM natively: an out-of-range
``split_feature`` is a segmentation fault, a child pointing at its own node a loop that
never ends, a wrong ``num_leaves`` a ``[Fatal]`` abort, and a model cut short loads
silently with fewer trees. The pair-gbdt sidecar and the matcher record each model
file's sha256 and size when it is written; a mismatch is one line naming the file and
the command that writes it again. Each load runs in a child process, so a native crash
on the old code fails the test instead of killing the suite.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.pair_examples import toy_examples

from rerank.pair_gbdt import PairGbdtModel, sidecar_path
from retrieval import atomic

pytest.importorskip("lightgbm")

from training.pair_gbdt import GbdtParams, fit_pair_gbdt  # noqa: E402

# each damage crashed or fooled the old loader: silent load, SIGSEGV, a hang, SIGABRT
DAMAGES = {
    "truncated": lambda t: t[: len(t) // 3],
    "feature-out-of-range": lambda t: t.replace("split_feature=", "split_feature=5000000 ", 1),
    "child-is-itself": lambda t: t.replace("left_child=-1\n", "left_child=0\n", 1),
    "leaf-count": lambda t: t.replace("num_leaves=2\n", "num_leaves=3\n", 1),
}

LOAD_PAIR_GBDT = """
import sys
import numpy as np
from rerank.base import build_reranker
from retrieval.errors import SearchError
try:
    model = build_reranker("pair-gbdt:" + sys.argv[1]).model
    model.booster.predict(np.zeros((3, len(model.features))))
except SearchError as exc:
    print(exc, file=sys.stderr)
    sys.exit(exc.exit_code)
"""


def run_child(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``args`` in a child process; a hang is a failure after 60 s."""
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    params = GbdtParams(min_data_in_leaf=5, num_boost_round=60)
    model = fit_pair_gbdt(toy_examples(60, 0), toy_examples(20, 1), params)
    return model.save(tmp_path_factory.mktemp("gbdt") / "model.txt")


def copy_model(model_file: Path, folder: Path) -> Path:
    path = folder / "model.txt"
    shutil.copy(model_file, path)
    shutil.copy(sidecar_path(model_file), sidecar_path(path))
    return path


def write_catalogue(path: Path, groups: int = 60) -> Path:
    """``groups`` products of 2-4 listings with reworded titles (JSONL, grouped)."""
    rng = random.Random(0)
    rows = []
    for g in range(groups):
        brand = rng.choice(["samsung", "xiaomi", "apple", "sony", "nike", "canon"])
        kind, model = rng.choice(["phone", "shoe", "camera"]), f"{rng.choice('abcxz')}{g}"
        for i in range(rng.randint(2, 4)):
            words = [brand, kind, model, f"{rng.choice([32, 64, 128])}gb", rng.choice("xyz")]
            rng.shuffle(words)
            rows.append({"id": f"p{g}-{i}", "title": " ".join(words), "group": f"g{g}"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def one_line(res: subprocess.CompletedProcess) -> str:
    assert res.returncode in (1, 2), (res.returncode, res.stderr[-2000:])
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    return lines[0]


def test_the_sidecar_records_the_model_files_checksum(model_file):
    meta = json.loads(sidecar_path(model_file).read_text())
    data = model_file.read_bytes()
    assert meta["model_file"]["size"] == len(data)
    assert len(meta["model_file"]["sha256"]) == 64
    PairGbdtModel.load(model_file)  # the intact model loads


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_pair_gbdt_model_is_one_line(model_file, tmp_path, damage):
    path = copy_model(model_file, tmp_path)
    path.write_text(DAMAGES[damage](path.read_text()))
    res = run_child([sys.executable, "-c", LOAD_PAIR_GBDT, str(path)])
    line = one_line(res)
    assert str(path) in line and "search train reranker --kind pair-gbdt" in line


def test_a_sidecar_without_a_checksum_is_refused_with_the_rebuild_command(model_file, tmp_path):
    path = copy_model(model_file, tmp_path)
    meta = json.loads(sidecar_path(path).read_text())
    del meta["model_file"]  # as an older version wrote it
    sidecar_path(path).write_text(json.dumps(meta))
    line = one_line(run_child([sys.executable, "-c", LOAD_PAIR_GBDT, str(path)]))
    assert "no recorded sha256" in line and "search train reranker --kind pair-gbdt" in line


def test_the_pair_gbdt_model_is_written_through_a_rename(model_file, tmp_path, monkeypatch):
    """A save cut short (here: the rename never happens) leaves the old model and sidecar
    as they were, and no partial file; LightGBM's ``save_model`` wrote in place."""
    path = copy_model(model_file, tmp_path)
    before = (path.read_bytes(), sidecar_path(path).read_bytes())
    other = fit_pair_gbdt(toy_examples(40, 5), toy_examples(20, 6), GbdtParams(num_boost_round=5))

    def no_rename(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", no_rename)
    with pytest.raises(OSError):
        other.save(path)
    monkeypatch.undo()
    assert (path.read_bytes(), sidecar_path(path).read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.txt", "model.txt.json"]
    PairGbdtModel.load(path)


def test_a_damaged_match_pair_model_is_one_line(tmp_path):
    """``search eval --match-pair`` writes matcher.pair*.txt; ``search match`` with one of
    them edited (a segfault on the old code) or a matcher without checksums is one line
    naming the file and ``search eval``."""
    catalogue = write_catalogue(tmp_path / "shop.jsonl")
    home = ["--data-dir", str(tmp_path / "home"), "-c", "shop"]
    out = tmp_path / "run"
    base = [sys.executable, "-m", "search"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    res = run_child([*base, "eval", str(catalogue), *home, "--match-pair", "--out", str(out)], env)
    assert res.returncode == 0, res.stderr[-2000:]
    match = [*base, "match", str(catalogue), *home, "-m", str(out / "matcher.json")]
    match += ["--rule", "pair+min2", "--out", str(tmp_path / "m")]
    assert run_child(match, env).returncode == 0

    damaged = out / "matcher.pair.1.txt"
    good = damaged.read_text()
    damaged.write_text(DAMAGES["feature-out-of-range"](good))
    line = one_line(run_child([*match[:-1], str(tmp_path / "m2")], env))
    assert str(damaged) in line and "search eval" in line

    damaged.write_text(good)
    matcher = json.loads((out / "matcher.json").read_text())
    del matcher["pair"]["files"]  # a matcher an older version wrote
    (out / "matcher.json").write_text(json.dumps(matcher))
    line = one_line(run_child([*match[:-1], str(tmp_path / "m3")], env))
    assert "no recorded sha256" in line and "search eval" in line
