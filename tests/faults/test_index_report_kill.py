"""Issue 10, item 4: SIGKILL `search index` after the batch holding the unreadable
images, run it again: the report lists the same failures as a clean run (they are
logged as they happen, before their batch is stored)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers.kill import kill_after_stored

N = 1500
BAD = 6


def catalog(tmp_path):
    images = tmp_path / "img"
    images.mkdir()
    rows = []
    for i in range(N):
        row = {"id": f"p{i}", "title": f"product {i} model x{i % 97}"}
        if i < BAD:  # the first batch: files that are not images
            (images / f"{i}.jpg").write_bytes(b"not a jpeg" * 10)
            row["image"] = f"img/{i}.jpg"
        rows.append(row)
    path = tmp_path / "shop.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def command(path, home):
    env = {**os.environ, "SEARCH_HOME": str(home), "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "search", "-v", "index", str(path), "-e", "sparse", "-e", "phash"]
    return cmd + ["--batch-size", "10"], env


def report(home):
    return json.loads((home / "reports" / "shop-index-report.json").read_text())


def test_failures_survive_a_kill(tmp_path):
    path = catalog(tmp_path)
    clean_cmd, clean_env = command(path, tmp_path / "clean")
    res = subprocess.run(clean_cmd, env=clean_env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    clean = report(tmp_path / "clean")
    assert clean["failures"] == BAD

    cmd, env = command(path, tmp_path / "killed")
    kill_after_stored(cmd, env, 100)  # past the bad batch, far from the end
    assert not (tmp_path / "killed" / "reports" / "shop-index-report.json").exists()

    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    resumed = report(tmp_path / "killed")
    assert resumed["skipped_existing"] >= 100  # the killed run's points were kept
    assert resumed["failures"] == BAD
    assert resumed["failed_items"].keys() == clean["failed_items"].keys()
