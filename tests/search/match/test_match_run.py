"""The match run folder (run.json, listings.jsonl, edges.jsonl, contributions and
margins in matches.jsonl) and ``search explain`` reading it back."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from retrieval.data import open_dataset
from retrieval.errors import SearchError
from search.cli import app
from search.config import load_config
from search.indexing import connect, index_dataset
from search.match.artifacts import FORMAT, read_run
from search.match.edges import reverse_index
from search.match.edgeset import self_edgeset
from search.match.explain import explain_pair
from search.match.job import match_dataset
from search.match.matcher import Matcher
from search.match.pair_model import load_model
from search.match.tuning.catalogue import tune_catalogue
from tests.search.match.conftest import write_catalogue

runner = CliRunner()


@pytest.fixture(scope="module")
def pair_run(tmp_path_factory):
    """A catalogue, a matcher with a pair model tuned on it, and a pair-model match run."""
    root = tmp_path_factory.mktemp("pair-run")
    catalogue = write_catalogue(root / "shop.jsonl")
    cfg = load_config(None, store={"data_dir": root / "home"}, stage1={"encoders": ["sparse"]})
    index_dataset(cfg, str(catalogue), collection="shop")
    index = connect(cfg)
    try:
        tune_catalogue(
            index, open_dataset(str(catalogue)), "shop", ["sparse"], ["sparse"], root / "tuned",
            pair=True, against="catalogue",
        )  # fmt: skip
    finally:
        index.close()
    matcher = root / "tuned" / "matcher.json"
    res = match_dataset(
        cfg, str(catalogue), matcher_path=matcher, rule_name="pair+min2", collection="shop",
        out=root / "run", explain_pairs=10**6,
    )  # fmt: skip
    return cfg, catalogue, matcher, res.out


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_run_folder_holds_run_listings_and_undirected_edges(pair_run):
    _, catalogue, matcher, run = pair_run
    manifest = read_run(run)
    assert manifest["format"] == FORMAT and manifest["kind"] == "match"
    assert manifest["primary"] == "pair" and manifest["matcher"] == str(matcher)
    assert manifest["threshold"] == manifest["thresholds"]["pair"] and manifest["labelled"]
    listings = _lines(run / "listings.jsonl")
    source = _lines(catalogue)
    assert manifest["listings"] == len(listings) == len(source)
    assert {r["id"]: r["group"] for r in listings} == {r["id"]: r.get("group") for r in source}
    edges = _lines(run / "edges.jsonl")
    pairs = [(e["a"], e["b"]) for e in edges]
    assert all(a < b for a, b in pairs) and len(set(pairs)) == len(pairs)
    # every matched pair of matches.jsonl that was scored is a matched edge, and back
    matched = {tuple(sorted((d["id"], m["id"]))) for d in _lines(run / "matches.jsonl")
               for m in d["matches"] if m["rule"] != "group"}  # fmt: skip
    assert matched == {(e["a"], e["b"]) for e in edges if e["matched"]}
    assert all(e["rule"] is None for e in edges if not e["matched"])
    assert all("contrib" in e and "logit" in e["contrib"] for e in edges)
    for e in edges:
        if e["rule"] == "pair":
            assert e["margin"] == pytest.approx(e["score"] - manifest["threshold"], abs=2e-6)


def test_contributions_sum_to_the_logit_averaged_over_seeds_and_directions(pair_run):
    cfg, catalogue, matcher_path, run = pair_run
    matcher = Matcher.load(matcher_path)
    pair = matcher.pair
    boosters = [
        load_model(p, pair.columns, f) for p, f in zip(pair.paths(matcher.base), pair.files)
    ]
    assert len(boosters) == pair.seeds > 1
    dataset = open_dataset(str(catalogue))
    index = connect(cfg)
    try:
        es = self_edgeset(index, "shop", dataset.name, list(dataset.products()), matcher)
        es.search()
    finally:
        index.close()
    x = es.features(pair.neighbours)
    raw = np.mean([b.predict(x, raw_score=True) for b in boosters], axis=0)
    rev = reverse_index(es.edges, es.n)
    logit = np.where(rev >= 0, (raw + raw[np.maximum(rev, 0)]) / 2, raw)
    ids = [p.id for p in es.products]
    want = {}
    for e, (i, j) in enumerate(zip(es.edges.src.tolist(), es.edges.dst.tolist())):
        want[tuple(sorted((ids[i], ids[j])))] = logit[e]
    edges = _lines(run / "edges.jsonl")
    assert {(e["a"], e["b"]) for e in edges} == set(want)
    for e in edges:
        terms = {k: v for k, v in e["contrib"].items() if k != "logit"}
        assert sum(terms.values()) == pytest.approx(e["contrib"]["logit"], abs=1e-6)
        assert e["contrib"]["logit"] == pytest.approx(want[(e["a"], e["b"])], abs=1e-6)
        # the score is the mean of the probabilities; the logit the mean of the raw scores
        assert abs(1 / (1 + np.exp(-e["contrib"]["logit"])) - e["score"]) < 0.2
    # the explain view's waterfall ends on the logit
    e = next(e for e in edges if e["matched"])
    ex = explain_pair(run, e["b"], e["a"])
    assert ex.steps()[-1][2] == pytest.approx(ex.logit, abs=1e-6) and ex.matched
    assert ex.steps()[0][0] == "bias"
    matches = _lines(run / "matches.jsonl")
    first = next(m for d in matches for m in d["matches"] if m["rule"] == "pair")
    assert set(first["contrib"]) >= {"bias", "logit", "rest"} and first["margin"] >= 0


def test_explain_prints_the_waterfall_and_the_thresholds(pair_run):
    *_, run = pair_run
    e = next(e for e in _lines(run / "edges.jsonl") if e["matched"] and e["rule"] == "pair")
    res = runner.invoke(app, ["explain", str(run), e["a"], e["b"]])
    assert res.exit_code == 0, res.output
    assert "matched by pair" in res.output and "bias" in res.output and "admitted" in res.output
    top = max((k for k in e["contrib"] if k not in ("bias", "rest", "logit")), key=len)
    assert top in res.output


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        (["p0-0", "nope"], "no listing 'nope' in the run"),
        (["p0-0", "p0-0"], "paired with itself"),
        (["p0-0", "x4"], "are not a candidate pair"),
    ],
)
def test_explain_of_a_pair_not_in_the_run_is_one_line(pair_run, ids, message):
    *_, run = pair_run
    edges = {(e["a"], e["b"]) for e in _lines(run / "edges.jsonl")}
    assert ("p0-0", "x4") not in edges
    res = runner.invoke(app, ["explain", str(run), *ids])
    assert res.exit_code == 1 and message in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_a_folder_of_another_format_or_none_is_one_line(tmp_path, pair_run):
    *_, run = pair_run
    res = runner.invoke(app, ["explain", str(tmp_path), "a", "b"])
    assert res.exit_code == 1 and "not a match run, or one from before format 1" in res.output
    old = tmp_path / "old"
    old.mkdir()
    manifest = json.loads((run / "run.json").read_text())
    (old / "run.json").write_text(json.dumps({**manifest, "format": 7, "version": "9.0"}))
    res = runner.invoke(app, ["explain", str(old), "a", "b"])
    assert res.exit_code == 1 and "format 7" in res.output and "'9.0'" in res.output
    assert len(res.output.strip().splitlines()) == 1
    with pytest.raises(SearchError, match="is not a folder"):
        read_run(tmp_path / "missing")


def test_a_run_keeps_the_contributions_of_the_pairs_nearest_its_threshold(pair_run, tmp_path):
    cfg, catalogue, matcher, _ = pair_run
    res = match_dataset(
        cfg, str(catalogue), matcher_path=matcher, rule_name="pair+min2", collection="shop",
        out=tmp_path / "few", explain_pairs=25,
    )  # fmt: skip
    threshold = read_run(res.out)["threshold"]
    edges = _lines(res.out / "edges.jsonl")
    assert len(edges) > 100

    def far(e):
        p = min(max(e["score"], 1e-9), 1 - 1e-9)
        return abs(np.log(p / (1 - p)) - np.log(threshold / (1 - threshold)))

    kept = [far(e) for e in edges if "contrib" in e]
    left = [far(e) for e in edges if "contrib" not in e]
    assert len(kept) == 25 and max(kept) <= min(left) + 1e-4  # scores rounded to 6 digits
    e = next(e for e in edges if "contrib" not in e)
    assert explain_pair(res.out, e["a"], e["b"]).steps() == []  # thresholds only


def test_eval_against_the_catalogue_writes_its_test_split_as_a_run(pair_run):
    _, catalogue, matcher, _ = pair_run
    run = matcher.parent / "match-test"
    manifest = read_run(run)
    assert manifest["matcher"] == str(matcher) and manifest["kind"] == "match"
    products = open_dataset(str(catalogue)).products()
    test = {p.id for p in products if p.group is not None and p.fields["split"] == "test"}
    listings = {r["id"] for r in _lines(run / "listings.jsonl")}
    assert {d["id"] for d in _lines(run / "matches.jsonl")} == test <= listings
    edges = _lines(run / "edges.jsonl")
    assert edges and all(e["a"] in test or e["b"] in test for e in edges)
    assert {e["a"] for e in edges} | {e["b"] for e in edges} <= listings
    e = next(e for e in edges if e["matched"])
    assert explain_pair(run, e["a"], e["b"]).matched
