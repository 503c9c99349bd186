"""`search mine` end to end on a synthetic Shopee catalogue and the tiny query/gallery set."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from retrieval.data import open_dataset
from retrieval.data.synth import synthesize
from search.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def synth_set(tmp_path_factory):
    """A synthetic Shopee-layout catalogue of 16 groups (read-only for every test)."""
    return synthesize(tmp_path_factory.mktemp("synth") / "data", groups=16, seed=0, image_size=32)


def test_mine_group_set(synth_set, tmp_path):
    data = synth_set
    out = tmp_path / "neg.jsonl"
    args = ["mine", str(data), "--encoder", "sparse", "--out", str(out), "--range", "2-20"]
    res = run(*args, "--negatives", "4", "--random", "1", "--seed", "3")
    assert res.exit_code == 0, res.output
    assert "hard +" in res.output and "random negatives" in res.output  # the counts
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    dataset = open_dataset(str(data))
    by_id = {p.id: p for p in dataset.products()}
    train = {q.id: q for q in dataset.queries("train") if q.matches}
    assert rows and {r["query_id"] for r in rows} <= set(train)
    for row in rows:
        query = by_id[row["query_id"]]
        assert set(row["pos_ids"]) == set(train[row["query_id"]].matches)
        assert 0 < len(row["neg_ids"]) <= 4 + 1  # hard ones, then one random
        for nid in row["neg_ids"]:
            neg = by_id[nid]
            assert neg.group != query.group and nid != query.id  # never a match
            assert neg.fields["split"] == "train"  # restricted to the split
        assert row["neg"] == [by_id[n].title for n in row["neg_ids"]]
    first = out.read_text()
    assert run(*args, "--negatives", "4", "--random", "1", "--seed", "3").exit_code == 0
    assert out.read_text() == first  # seeded: the same file again


def test_mine_query_gallery_and_bad_range(tiny_set, tmp_path):
    out = tmp_path / "neg.jsonl"
    res = run(
        "mine",
        str(tiny_set),
        "-e",
        "sparse",
        "-o",
        str(out),
        "--split",
        "test",
        "--range",
        "1-5",
        "-n",
        "2",
    )
    assert res.exit_code == 0, res.output
    rows = {json.loads(line)["query_id"]: json.loads(line) for line in out.read_text().splitlines()}
    assert rows["q1"]["pos_ids"] == ["g1"] and "g1" not in rows["q1"]["neg_ids"]
    assert "q6" not in rows  # its match is not in the gallery
    assert rows["q4"]["pos"] == [
        "sony wh-1000xm4 wireless headphones",
        "bose quietcomfort 35 ii headphones",
    ]
    res = run("mine", str(tiny_set), "-e", "sparse", "-o", str(out), "--range", "9-3")
    assert res.exit_code != 0 and "bad rank range" in res.output


def test_mine_then_train_both_kinds(synth_set, tmp_path):
    """`search mine` -> `search train reranker --kind cross-encoder` and
    `search train biencoder --kind text` on its file; the outputs load by spec. Lexical
    vectors only (the collection `mine` indexed serves the reranker's stage 1 too), so
    no MiniLM is loaded."""
    pytest.importorskip("datasets")
    from helpers.tiny_bert import build_tiny_bert

    from rerank.base import build_reranker
    from retrieval.encoders.base import build_encoder
    from retrieval.types import Candidate, Product

    bert = build_tiny_bert(tmp_path / "bert")
    data = synth_set
    neg = tmp_path / "neg.jsonl"
    assert run("mine", str(data), "-e", "sparse", "-o", str(neg), "-n", "3").exit_code == 0
    ce = tmp_path / "ce"
    res = run(
        "train",
        "reranker",
        str(data),
        "--kind",
        "cross-encoder",
        "--model",
        str(bert),
        "--negatives",
        str(neg),
        "--out",
        str(ce),
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--group-size",
        "3",
        "--max-length",
        "32",
        "--k",
        "5",
        "--encoder",
        "sparse",
    )
    assert res.exit_code == 0, res.output
    assert "recall@1" in res.output and "steps" in res.output
    reranker = build_reranker(f"cross-encoder:{ce},device=cpu")
    assert len(reranker.score([(Product("q", "nike"), Candidate(Product("c", "nike"), 1, 1))])) == 1
    st = tmp_path / "st"
    text = ["train", "biencoder", str(data), "--kind", "text", "--model", str(bert)]
    text += ["--out", str(st)]
    res = run(*text, "--negatives", str(neg), "--batch-size", "4", "--lr", "1e-4")
    assert res.exit_code == 0, res.output
    assert "valid_recall@10" in res.output
    enc = build_encoder(f"text:{st},device=cpu")
    assert enc.encode([Product("a", "nike air zoom")]).vectors["text"][0].shape == (32,)
    res = run(*text, "--batch-size", "64")
    assert res.exit_code != 0 and "fewer than --batch-size 64" in res.output
