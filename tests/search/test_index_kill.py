"""A real SIGKILL in the middle of `search index`, then a re-run: one point per listing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers.kill import kill_after_stored

from retrieval.index import open_index

N = 3000


def test_killed_index_run_resumes_without_loss_or_duplicates(tmp_path):
    catalog = tmp_path / "big.jsonl"
    catalog.write_text(
        "\n".join(
            json.dumps({"id": f"p{i}", "title": f"product {i} model x{i % 97} {i * 7 % 13}gb"})
            for i in range(N)
        )
    )
    home = tmp_path / "home"
    env = {**os.environ, "SEARCH_HOME": str(home), "COLUMNS": "200"}
    cmd = [
        sys.executable,
        "-m",
        "search.cli",
        "-v",
        "index",
        str(catalog),
        "-e",
        "sparse",
        "--batch-size",
        "10",
    ]
    kill_after_stored(cmd, env, 200)  # well into the run, far from its end

    res = subprocess.run(cmd[:3] + cmd[4:], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    report = json.loads((home / "reports" / "big-index-report.json").read_text())
    assert report["skipped_existing"] >= 200  # the first run's points survived the kill
    assert report["written"] + report["skipped_existing"] == N

    index = open_index("edge", data_dir=home)
    assert index.info("big").points == N
    index.close()
