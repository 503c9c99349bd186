"""The review queues: a match run's (nearest the threshold, then the bridges a group merge
hangs on) and a cold start's over an unlabelled catalogue (spread first, then the pair
model fitted from the labels alone, its matcher applied by ``search match``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from retrieval.data import open_dataset
from retrieval.errors import SearchError
from retrieval.types import Product
from search.cli import app
from search.indexing import connect
from search.match.artifacts import write_edges, write_listings, write_run_manifest
from search.match.cold_start import ColdStart, expected_f1
from search.match.job import match_dataset
from search.match.labels import Label, append_label, read_labels
from search.match.matcher import Matcher
from search.match.queue import BRIDGE, NEAR, SPREAD, bridges, distance, pick, stratified
from search.match.review import RunQueue, start_review

runner = CliRunner()


def test_distance_is_in_logits_for_a_probability():
    d = distance(np.array([0.5, 0.6, 0.9, 0.99]), 0.5, probability=True)
    assert d[0] == 0 and d[1] < d[2] < d[3]  # 0.9 -> 0.99 is as far again in logits
    assert d[3] - d[2] == pytest.approx(np.log(99) - np.log(9))
    assert distance(np.array([0.7]), 0.5, probability=False)[0] == pytest.approx(0.2)


def test_a_bridge_joins_two_parts_of_two_listings_or_more():
    # triangles 0-1-2 and 3-4-5 joined by 2-3; 5-6 hangs a single listing on
    a = np.array([0, 1, 0, 3, 4, 3, 2, 5])
    b = np.array([1, 2, 2, 4, 5, 5, 3, 6])
    assert bridges(a, b, 7).tolist() == [False] * 6 + [True, False]


def test_a_batch_names_no_listing_twice_and_skips_seen_pairs():
    a, b = ["x", "x", "y", "z"], ["y", "z", "z", "w"]
    assert pick([0, 1, 2, 3], a, b, 2, set()) == [0, 3]
    assert pick([0, 1, 2, 3], a, b, 2, {("x", "y")}) == [1, 2]  # 2 shares z: only as a filler
    assert pick([0, 1, 2, 3], a, b, 4, set()) == [0, 3, 1, 2]  # then the skipped, in order
    order = stratified(np.arange(10.0), np.arange(10), 5, np.random.default_rng(0))
    assert sorted(order) == list(range(10)) and {order[i] // 2 for i in range(5)} == set(range(5))


def test_expected_f1_reads_the_probabilities_as_truth():
    # one listing, candidates of probability 0.9 and 0.1: keeping only the first expects
    # 2 * (1 + 0.9) / (2 + 1 + 1) = 0.95, both 0.8, none 2 / 3
    t, f1 = expected_f1(np.array([0, 0]), np.array([0.9, 0.1]), 1)
    assert 0.1 < t <= 0.9 and f1 == pytest.approx(0.95)


def _run(folder, threshold=0.5):
    """A pair-model run over six listings: two matched triangles joined by one matched
    edge (0.95, far from the threshold), an unmatched edge near it (0.45) and far (0.05)."""
    products = [Product(f"p{i}", f"listing {i}") for i in range(7)]
    edges = {("p0", "p1"): 0.99, ("p1", "p2"): 0.97, ("p0", "p2"): 0.98, ("p3", "p4"): 0.99,
             ("p4", "p5"): 0.97, ("p3", "p5"): 0.96, ("p2", "p3"): 0.95, ("p5", "p6"): 0.45,
             ("p1", "p6"): 0.05}  # fmt: skip
    rows = [{"a": a, "b": b, "score": s, "scores": {"pair": s}, "matched": s >= threshold,
             "rule": "pair" if s >= threshold else None} for (a, b), s in edges.items()]  # fmt: skip
    write_listings(folder, products)
    write_edges(folder, rows)
    write_run_manifest(
        folder, dataset="shop", source="shop.jsonl", collection="shop", matcher=None,
        primary="pair", thresholds={"pair": threshold}, rule={}, labelled=False, listings=7,
    )  # fmt: skip
    return folder


def test_the_run_queue_asks_near_the_threshold_then_the_bridge(tmp_path):
    q = RunQueue.open(_run(tmp_path))
    items = q.next(3)
    assert [(i.a, i.b, i.reason) for i in items[:2]] == [
        ("p5", "p6", NEAR),
        ("p2", "p3", BRIDGE),
    ]
    assert items[0].threshold == 0.5 and items[0].score == pytest.approx(0.45)
    q.record(Label.now("p6", "p5", "no_match", "studio"))
    assert ("p5", "p6") not in {(i.a, i.b) for i in q.next(10)}
    again = RunQueue.open(tmp_path)  # the label was appended to the run's labels.jsonl
    assert again.next(1)[0].reason == BRIDGE
    assert again.progress()["labelled"] == 1 and again.progress()["no_match"] == 1
    assert read_labels(tmp_path / "labels.jsonl")[("p5", "p6")].source == "studio"


def test_the_run_queue_refuses_what_is_not_a_run_of_this_format(tmp_path):
    with pytest.raises(SearchError, match="not a match run"):
        RunQueue.open(tmp_path)
    _run(tmp_path)
    meta = json.loads((tmp_path / "run.json").read_text())
    (tmp_path / "run.json").write_text(json.dumps({**meta, "format": 2}))
    with pytest.raises(SearchError, match="format 2"):
        RunQueue.open(tmp_path)


def _oracle(catalogue):
    groups = {r["id"]: r.get("group") for r in map(json.loads, catalogue.open())}
    return lambda a, b: "match" if groups[a] and groups[a] == groups[b] else "no_match"


@pytest.fixture
def cold(indexed, sparse_cfg, tmp_path):
    """A review folder over the sparse-indexed catalogue, groups hidden."""
    dataset = open_dataset(str(indexed))
    products = [Product(p.id, p.title, fields=p.fields) for p in dataset.products()]
    index = connect(sparse_cfg)
    try:
        queue = ColdStart.create(
            index, "shop", dataset.name, products, ["sparse"], ["sparse"], tmp_path / "rev",
            batch=10,
        )  # fmt: skip
    finally:
        index.close()
    return queue, tmp_path / "rev", _oracle(indexed)


def test_cold_start_spreads_then_learns_and_writes_a_matcher(cold, indexed, sparse_cfg, tmp_path):
    queue, folder, oracle = cold
    first = queue.next(10)
    assert len(first) == 10 and {i.reason for i in first} == {SPREAD}
    ids = [x for i in first for x in (i.a, i.b)]
    assert len(ids) == len(set(ids))  # no listing twice in a batch
    assert not (folder / "matcher.json").exists()  # no model before the labels
    for _ in range(3):
        for item in queue.next(10):
            queue.record(Label.now(item.a, item.b, oracle(item.a, item.b), "review"))
    p = queue.progress()
    assert p["labelled"] == 30 and p["match"] + p["no_match"] == 30
    assert 0 < p["threshold"] < 1 and 0 < p["estimated_f1"] <= 1
    meta = json.loads((folder / "run.json").read_text())
    assert meta["kind"] == "review" and meta["primary"] == "pair"
    assert meta["threshold"] == pytest.approx(p["threshold"])
    labelled = set(queue.labels)
    assert not labelled & {(i.a, i.b) for i in queue.next(50)}
    reopened = ColdStart.open(folder)  # from the folder alone: the same fit and queue
    assert reopened.threshold == queue.threshold
    assert [(i.a, i.b) for i in reopened.next(10)] == [(i.a, i.b) for i in queue.next(10)]
    matcher = Matcher.load(folder / "matcher.json")
    assert matcher.chosen().thresholds == {"pair": pytest.approx(queue.threshold)}
    res = match_dataset(sparse_cfg, str(indexed), matcher_path=folder / "matcher.json",
                        collection="shop", out=tmp_path / "m")  # fmt: skip
    alone = match_dataset(sparse_cfg, str(indexed), flags=_nothing(), collection="shop",
                          out=tmp_path / "alone")  # fmt: skip
    assert res.scores.f1 > alone.scores.f1  # the labels taught it to match


def test_search_review_reopened_fits_the_labels_another_tool_appended(cold, indexed, sparse_cfg):
    """Labels appended to the folder by another tool are fitted on when ``search review``
    reopens it, and the matcher it rewrites is that fit (one fit, then saved)."""
    queue, folder, oracle = cold
    for item in queue.next(10):
        queue.record(Label.now(item.a, item.b, oracle(item.a, item.b), "review"))
    assert queue.boosters  # ten labels of the batch: fitted
    before = (folder / "matcher.pair.txt").read_text()
    for item in queue.next(10):  # not recorded: no refit in this process
        append_label(
            folder / "labels.jsonl", Label.now(item.a, item.b, oracle(item.a, item.b), "x")
        )
    reopened = start_review(sparse_cfg, str(indexed), folder)
    assert len(reopened.labels) == 20
    fresh = ColdStart.open(folder)  # the same labels fitted from the folder alone
    assert fresh.threshold == reopened.threshold
    assert Matcher.load(folder / "matcher.json").chosen().thresholds == {
        "pair": pytest.approx(reopened.threshold)
    }
    after = (folder / "matcher.pair.txt").read_text()
    assert after != before and after == fresh.boosters[0].model_to_string()


def _nothing():
    from search.match.job import RuleFlags

    return RuleFlags({"mean": 2.0})  # no cosine reaches 2: every listing matches itself only


def test_search_review_prints_the_queue_and_refuses_a_foreign_folder(indexed, sparse_cfg, tmp_path):
    home = ["--data-dir", str(sparse_cfg.store.data_dir)]
    args = ["review", str(indexed), "-c", "shop", *home, "--no-serve", "--show", "4"]
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "rev")])
    assert res.exit_code == 0, res.output
    lines = [line.split("\t") for line in res.output.splitlines() if "\t" in line]
    assert len(lines) == 4 and all(r[3] == SPREAD for r in lines)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "other")])
    assert res.exit_code == 2 and "holds files but no review" in res.output
    _run(tmp_path / "run")
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "run")])
    assert res.exit_code != 0 and "is a match run" in res.output
