"""The jobs against a real Qdrant: `search index`, `query`, `collections`, `eval`, `match`
and `ablate` on a node and on a sharded, replicated 3-peer cluster give what they give on
the embedded engine; API keys; bad cluster settings are one line each."""

from __future__ import annotations

import json
import random
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from search.cli import app

runner = CliRunner()
BRANDS = ["samsung", "xiaomi", "apple", "sony", "bose", "nike", "adidas", "canon", "asus"]
TIMING = re.compile(r"_ms|qps|seconds")  # wall-clock figures differ from run to run
KINDS = ["phone", "headphones", "shoe", "camera", "watch", "laptop"]


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def shop(path: Path, groups: int = 50, seed: int = 3) -> Path:
    """A grouped catalogue: 2-4 reworded listings per product, a few loners."""
    rng = random.Random(seed)
    rows = []
    for g in range(groups):
        words = [rng.choice(BRANDS), rng.choice(KINDS), f"{rng.choice('kmqr')}{rng.randint(1, 99)}"]
        for i in range(rng.randint(2, 4)):
            title = [*words, f"{rng.choice([16, 32, 64, 128])}gb"]
            rng.shuffle(title)
            rows.append({"id": f"s{g}-{i}", "title": " ".join(title), "group": f"g{g}"})
    rows += [{"id": f"lone{i}", "title": f"{rng.choice(BRANDS)} cable {i}"} for i in range(4)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def jobs(data: Path, out: Path, store: list[str], encoders: list[str], layout=()) -> dict:
    """index (twice: the second resumes), eval, match; what each wrote."""
    enc = [a for e in encoders for a in ("--encoder", e)]
    name = f"shop-{uuid.uuid4().hex[:8]}"  # the session's servers outlive a test
    res = run("index", data, *enc, "--collection", name, *layout, *store)
    assert res.exit_code == 0, res.output
    res = run("index", data, *enc, "--collection", name, *store)
    assert res.exit_code == 0 and "0 written" in res.output, res.output
    res = run("eval", data, "--collection", name, "--k", "10", "--out", out / "eval", *store)
    assert res.exit_code == 0, res.output
    matcher = out / "eval" / "matcher.json"
    res = run("match", data, "--collection", name, "--matcher", matcher, "--out", out / "m", *store)
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    return {
        "metrics": {k: v for k, v in metrics.items() if not TIMING.search(k)},
        "matches": (out / "m" / "matches.csv").read_text(),
        "collection": name,
    }


@pytest.mark.parametrize(
    ("encoders", "layout"),
    [
        # a dense vector: exact on every shard, merged, as on one shard
        (["text"], ["--shards", "2", "--replicas", "2", "--write-consistency", "2"]),
        # IDF-weighted sparse: one shard (IDF is counted per shard), copied to every peer
        (["sparse", "sparse:word,name=words"], ["--replicas", "3"]),
    ],
    ids=["dense-sharded", "sparse-replicated"],
)
def test_cluster_jobs_equal_the_embedded_engine(tmp_path, qdrant_cluster, encoders, layout):
    data = shop(tmp_path / "shop.jsonl")
    edge = jobs(data, tmp_path / "edge", ["--data-dir", tmp_path / "home"], encoders)
    cluster = jobs(
        data, tmp_path / "cluster", ["--qdrant-url", qdrant_cluster.url], encoders, layout
    )
    assert cluster["matches"] == edge["matches"]
    assert cluster["metrics"].keys() == edge["metrics"].keys()
    for key, value in edge["metrics"].items():
        if isinstance(value, float):
            assert cluster["metrics"][key] == pytest.approx(value, abs=1e-9), key
    res = run("collections", "--json", "--qdrant-url", qdrant_cluster.url)
    name = cluster["collection"]
    row = next(r for r in json.loads(res.stdout) if r["name"] == name)
    assert row["points"] == len(data.read_text().splitlines())
    res = run("query", "samsung phone", "--collection", name, "--qdrant-url", qdrant_cluster.url)
    assert res.exit_code == 0 and "samsung" in res.output
    res = run(
        "query", "samsung phone", "--collection", name, "--read-consistency", "all",
        "--qdrant-url", qdrant_cluster.url,
    )  # fmt: skip
    assert res.exit_code == 0, res.output


def test_ablate_on_a_server(tmp_path, qdrant_node):
    data = shop(tmp_path / "shop.jsonl", groups=20)
    grid = tmp_path / "grid.toml"
    grid.write_text(
        f'[grid]\ndataset = "{data}"\nencoders = [["sparse"], ["sparse:word"]]\nk = [5, 10]\n'
    )
    res = run("ablate", grid, "--out", tmp_path / "abl", "--qdrant-url", qdrant_node.url)
    assert res.exit_code == 0, res.output
    rows = (tmp_path / "abl" / "comparison.csv").read_text().splitlines()
    assert len(rows) == 5  # a header and the four cells


def test_api_key_is_sent_and_a_wrong_one_is_one_line(tmp_path, request):
    request.getfixturevalue("qdrant_node")  # skips or fails as the other server tests do
    from qdrant_server import QdrantNode

    node = QdrantNode(tmp_path / "keyed", api_key="s3cret").start()
    try:
        data = shop(tmp_path / "shop.jsonl", groups=5)
        store = ["--qdrant-url", node.url]
        res = run("index", data, "-e", "sparse", *store, "--qdrant-api-key", "s3cret")
        assert res.exit_code == 0, res.output
        res = run("collections", "--json", *store, "--qdrant-api-key", "wrong")
        assert res.exit_code == 1 and "refused the API key" in res.output
        assert len(res.output.strip().splitlines()) == 1
    finally:
        node.stop()


class _OldQdrant(BaseHTTPRequestHandler):
    """Answers every GET as a Qdrant 1.9 server would its root."""

    def do_GET(self):  # noqa: N802
        body = json.dumps({"title": "qdrant", "version": "1.9.0"}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def old_server():
    server = HTTPServer(("127.0.0.1", 0), _OldQdrant)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_bad_cluster_settings_are_one_line(tmp_path, qdrant_cluster, qdrant_node, old_server):
    data = shop(tmp_path / "shop.jsonl", groups=3)
    cases = [
        (["--qdrant-url", qdrant_cluster.url, "--replicas", "4"], 2, "needs at least 4 peers"),
        (["--qdrant-url", qdrant_node.url, "--replicas", "2"], 2, "the Qdrant at"),
        (["--qdrant-url", qdrant_cluster.url, "--replicas", "2", "--write-consistency", "3"], 2,
         "write consistency 3 needs"),
        (["--qdrant-url", qdrant_cluster.url, "--shards", "0"], 2, "--shards"),
        (["--qdrant-url", qdrant_node.url, "--read-consistency", "most"], 2,
         "unknown read consistency"),
        (["--qdrant-url", old_server], 1, "is version 1.9.0"),
    ]  # fmt: skip
    for args, code, message in cases:
        res = run("index", data, "-e", "sparse", "--collection", "bad", *args)
        assert res.exit_code == code, (args, res.output)
        assert message in res.output, (args, res.output)
        if code == 1:
            assert len(res.output.strip().splitlines()) == 1, res.output
