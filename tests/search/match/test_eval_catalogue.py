"""``search eval`` on a catalogue: the matcher tuned on valid, every rule's F1 on valid
and test from ``retrieval.metrics.match_scores``, the matcher file usable by ``search match``."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from retrieval.errors import UsageError
from retrieval.metrics import match_scores
from search.cli import app
from search.evaluation.evaluate import evaluate_dataset
from search.indexing import connect
from search.match.edgeset import self_edgeset
from search.match.job import density_notes, match_dataset
from search.match.matcher import Matcher

runner = CliRunner()


@pytest.fixture
def tuned(indexed, sparse_cfg, tmp_path):
    return evaluate_dataset(sparse_cfg, str(indexed), collection="shop", out=tmp_path / "run")


def test_eval_writes_the_matcher_and_each_rules_f1(tuned):
    m = tuned.metrics
    rules = {k.split("/")[1] for k in m if k.startswith("match/")}
    assert {"sparse", "sparse+min2", "sparse+min2+components", "inb1+sparse+min2"} <= rules
    assert "stage2/f1" not in m and "stage1/f1_nearest" not in m  # no RRF thresholds, no copy
    matcher = Matcher.load(tuned.out / "matcher.json")
    assert matcher.encoders == ["sparse"] and matcher.rule in rules
    assert m["stage1/f1"] == m[f"match/{matcher.rule}/f1"]
    report = (tuned.out / "report.md").read_text()
    assert "| stage 1 | inb1+sparse+min2 |" in report and "stage 2 |" not in report
    assert not (tuned.out / "f1_threshold.png").exists()


def test_eval_of_an_indexed_catalogue_encodes_no_listing(
    indexed, sparse_cfg, tmp_path, monkeypatch
):
    from dataclasses import replace

    from retrieval.encoders.sparse import SparseEncoder

    encode = SparseEncoder.encode
    monkeypatch.setattr(SparseEncoder, "encode", lambda *_a, **_k: pytest.fail("encoded"))
    res = evaluate_dataset(sparse_cfg, str(indexed), collection="shop", out=tmp_path / "a")
    assert any(n.endswith("(encoded: 0)") for n in res.notes)
    assert "(encoded: 0)" in (res.out / "report.md").read_text()
    monkeypatch.setattr(SparseEncoder, "encode", encode)  # eval.stored_queries = false
    cfg = replace(sparse_cfg, eval=replace(sparse_cfg.eval, stored_queries=False))
    again = evaluate_dataset(cfg, str(indexed), collection="shop", out=tmp_path / "b")
    assert not any("stored vectors" in n for n in again.notes)
    assert again.metrics["queries/evaluated"] == res.metrics["queries/evaluated"]


def test_stored_queries_read_the_index_and_encode_only_what_it_lacks(indexed, sparse_cfg):
    from retrieval.data import open_dataset
    from retrieval.retriever import Retriever
    from retrieval.types import Product
    from search.evaluation.stored import StoredQueries

    dataset = open_dataset(str(indexed))
    stored, new = next(iter(dataset.products())), Product("new", "samsung phone a10 64gb")
    index = connect(sparse_cfg)
    try:
        queries = StoredQueries(index, "shop", dataset.name)
        assert queries.encoder_specs == ["sparse"] and queries.vector_names() == ["sparse"]
        enc = queries.encode([stored, new], query=True)
        want = Retriever.for_collection(index, "shop").encode([stored, new], query=False)
    finally:
        index.close()
    assert (queries.fetched, queries.encoded) == (1, 1)
    got, doc = enc.vectors["sparse"], want.vectors["sparse"]
    assert got[0].indices.tolist() == doc[0].indices.tolist()  # the stored (document) side
    assert got[0].values.tolist() == pytest.approx(doc[0].values.tolist())
    assert set(got[1].values.tolist()) == {1.0}  # not stored: encoded as a query


def test_reported_f1_is_match_scores_on_the_decided_sets(tuned, sparse_cfg, indexed):
    from retrieval.data import open_dataset

    matcher = Matcher.load(tuned.out / "matcher.json")
    rule = matcher.chosen("sparse+min2")
    dataset = open_dataset(str(indexed))
    rows = [q.product for q in dataset.queries("test")]
    index = connect(sparse_cfg)
    try:
        es = self_edgeset(index, "shop", dataset.name, rows, matcher, filter_key="split")
        es.search()
        sets = es.decide(rule)
    finally:
        index.close()
    targets = es.targets()
    want = match_scores({r: sets.get(r, ()) for r in targets}, targets, include_self=True)
    assert tuned.metrics["match/sparse+min2/f1"] == pytest.approx(want.f1)


def test_the_tuned_matcher_drives_search_match(tuned, sparse_cfg, indexed, tmp_path):
    res = match_dataset(
        sparse_cfg,
        str(indexed),
        matcher_path=tuned.out / "matcher.json",
        collection="shop",
        out=tmp_path / "m",
    )
    assert res.rule == Matcher.load(tuned.out / "matcher.json").rule
    # tuned among one split's listings, run among all of them: the user is told
    assert any("--match-against catalogue" in note for note in res.notes)
    assert res.scores is not None and res.scores.f1 > 0.7
    assert json.loads(res.jsonl.read_text().splitlines()[0])["id"]


def test_pair_model_rules_are_stage_2(indexed, tmp_path):
    home = ["--data-dir", str(tmp_path / "home"), "-c", "shop"]
    out = tmp_path / "run2"
    res = runner.invoke(app, ["eval", str(indexed), *home, "--match-pair", "--out", str(out)])
    assert res.exit_code == 0, res.output
    m = json.loads((out / "metrics.json").read_text())
    assert "stage2/f1" in m and "match/pair+min2/f1" in m
    assert (out / "matcher.pair.txt").is_file()
    matcher = Matcher.load(out / "matcher.json")
    assert matcher.pair is not None and matcher.pair.model == "matcher.pair.txt"
    files = matcher.pair.paths(out)  # one LightGBM file per seed, averaged
    assert matcher.pair.seeds == 5 and [p.name for p in files][:2] == [
        "matcher.pair.txt",
        "matcher.pair.1.txt",
    ]
    assert all(p.is_file() for p in files)
    res = runner.invoke(
        app, ["match", str(indexed), *home, "-m", str(out / "matcher.json"), "--rule", "pair+min2"]
    )
    assert res.exit_code == 0, res.output
    files[-1].unlink()
    res = runner.invoke(
        app, ["match", str(indexed), *home, "-m", str(out / "matcher.json"), "--rule", "pair+min2"]
    )
    assert res.exit_code == 2 and "pair model" in res.output and "missing" in res.output


def test_eval_of_an_unlabelled_catalogue_is_one_line(tmp_path, sparse_cfg):
    path = tmp_path / "plain.jsonl"
    path.write_text('{"id": "a", "title": "red shoe"}\n{"id": "b", "title": "blue shoe"}\n')
    with pytest.raises(UsageError, match="no queries"):
        evaluate_dataset(sparse_cfg, str(path), out=tmp_path / "r")


def test_tuned_against_the_catalogue_scores_each_split_among_every_listing(
    indexed, sparse_cfg, tmp_path
):
    import numpy as np

    from retrieval.data import open_dataset
    from search.match.tuning.catalogue import tune_catalogue

    dataset = open_dataset(str(indexed))
    bars: dict[str, int] = {}

    def progress(what: str, total: int):
        bars[what] = 0

        def tick(n: int) -> None:
            bars[what] += n

        return tick

    index = connect(sparse_cfg)
    try:
        cat = tune_catalogue(
            index, dataset, "shop", ["sparse"], ["sparse"], tmp_path / "cat",
            pair=True, against="catalogue", progress=progress,
        )  # fmt: skip
        products = list(dataset.products())
        es = self_edgeset(index, "shop", dataset.name, products, cat.matcher)
        es.search()
    finally:
        index.close()
    assert cat.matcher.info["tuned_against"] == "catalogue"
    assert density_notes(cat.matcher, len(products)) == []  # tuned at this density
    assert cat.matcher.pair is not None and (tmp_path / "cat" / "matcher.pair.txt").is_file()
    # the reported F1: the test listings' sets decided among every listing of the catalogue
    es.queries = np.array([i for i, p in enumerate(products) if p.fields["split"] == "test"])
    rule = cat.matcher.chosen("sparse+min2")
    sets, targets = es.decide(rule), es.targets()
    assert set(targets) == set(es.queries.tolist())
    want = match_scores({r: sets.get(r, ()) for r in targets}, targets, include_self=True)
    assert cat.metrics()["match/sparse+min2/f1"] == pytest.approx(want.f1)
    # the long steps of tuning show bars that move: the pair model's trees among them
    assert bars["candidates"] == len(products)
    assert any(what.startswith("pair model") and n > 0 for what, n in bars.items())
    assert bars["tuning stage2 rules"] == 4


def test_cli_match_against(indexed, tmp_path):
    home = ["--data-dir", str(tmp_path / "home"), "-c", "shop"]
    out = tmp_path / "run3"
    res = runner.invoke(
        app, ["eval", str(indexed), *home, "--match-against", "catalogue", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert Matcher.load(out / "matcher.json").info["tuned_against"] == "catalogue"
    assert "matched against the whole catalogue" in (out / "report.md").read_text()
    res = runner.invoke(app, ["eval", str(indexed), *home, "--match-against", "shop"])
    assert res.exit_code == 2 and "match_against must be 'split' or 'catalogue'" in res.output
    assert "Traceback" not in res.output
