"""The `search` CLI: index, query, collections, data commands and their errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from search.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def catalog(tmp_path):
    path = tmp_path / "shop.jsonl"
    rows = [
        {"id": "a1", "title": "Samsung Galaxy A52 128GB Hitam", "group": "a52"},
        {"id": "a2", "title": "galaxy a52 samsung 128 gb black promo", "group": "a52"},
        {"id": "b1", "title": "Xiaomi Redmi Note 10 64GB", "group": "rn10"},
        {"id": "b2", "title": "redmi note 10 xiaomi 64 gb murah", "group": "rn10"},
        {"id": "c1", "title": "[promo] Sepatu Nike Air Zoom 42", "group": "nike"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


def test_help_answers_without_torch():
    code = "import sys; from search.cli import app; assert 'torch' not in sys.modules; assert 'qdrant_client' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    res = run("--help")
    assert res.exit_code == 0 and "index" in res.output


def test_index_query_collections_roundtrip(catalog):
    res = run("index", str(catalog), "--encoder", "sparse", "--encoder", "sparse:word,name=words")
    assert res.exit_code == 0, res.output
    assert "5 written" in res.output
    res = run("query", "redmi note 10 64gb", "--json", "--top-k", "2")
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["collection"] == "shop" and payload["vector"] == "hybrid"
    assert {h["id"] for h in payload["hits"]} == {"b1", "b2"}
    assert [h["rank"] for h in payload["hits"]] == [1, 2]
    res = run("query", "nike air zoom", "--vector", "words", "-k", "1")
    assert res.exit_code == 0 and "c1" in res.output
    assert "[promo]" in res.output  # titles are shown as text, never as rich markup
    res = run("collections", "--json")
    rows = json.loads(res.stdout)
    assert rows == [
        {
            "name": "shop",
            "points": 5,
            "vectors": {"sparse": "sparse", "words": "sparse"},
            "encoders": ["sparse", "sparse:word,name=words"],
            "dataset": "shop",
        }
    ]


def test_reindex_is_idempotent(catalog):
    assert run("index", str(catalog), "-e", "sparse").exit_code == 0
    res = run("index", str(catalog), "-e", "sparse")
    assert "0 written, 5 already stored" in res.output
    res = run("collections", "--json")
    assert json.loads(res.stdout)[0]["points"] == 5


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["index", "{cat}", "-e", "nope"], 2, "unknown encoder 'nope'; known:"),
        (["index", "/does/not/exist"], 2, "dataset not found"),
        (["index", "{cat}", "-e", "sparse", "--format", "weird"], 2, "weird"),
        (["query", "x"], 2, "no collection yet"),
        (
            ["index", "{cat}", "-e", "sparse", "--qdrant-url", "http://127.0.0.1:9"],
            1,
            "docker compose up -d qdrant",
        ),
    ],
)
def test_errors_are_one_line_with_exit_code(catalog, args, code, message):
    res = run(*[a.replace("{cat}", str(catalog)) for a in args])
    assert res.exit_code == code, res.output
    assert message in res.output
    assert "Traceback" not in res.output


def test_changed_vectors_need_recreate(catalog):
    assert run("index", str(catalog), "-e", "sparse").exit_code == 0
    res = run("index", str(catalog), "-e", "sparse:word")
    assert res.exit_code == 2 and "--recreate" in res.output
    res = run("index", str(catalog), "-e", "sparse:word", "--recreate")
    assert res.exit_code == 0 and "5 written" in res.output


def test_query_with_missing_image_and_unknown_vector(catalog):
    assert run("index", str(catalog), "-e", "sparse").exit_code == 0
    res = run("query", "x", "--image", "/no/such.jpg")
    assert res.exit_code == 2 and "image not found" in res.output
    res = run("query", "x", "--vector", "image")
    assert res.exit_code == 2 and "unknown vector 'image'" in res.output


def test_bad_config_key_names_nearest(tmp_path, catalog):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[index]\nhnsw_mm = 8\n")
    res = run("index", str(catalog), "--config", str(cfg))
    assert res.exit_code == 2 and "did you mean 'hnsw_m'" in res.output


def test_example_config_loads():
    from pathlib import Path

    from search.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[2] / "examples" / "search.toml")
    assert cfg.index.quantization == "int8" and cfg.stage1.k == 50
    assert cfg.stage1.encoders == ["text", "sparse"]
