"""benchmarks/review_bench.py on a small catalogue: the simulated reviewer answers from
the groups, the queues never ask about a test offer, and the figures it reports are the
Shopee F1 the matcher's rule gets."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from search.indexing import index_dataset

BENCH = Path(__file__).resolve().parents[3] / "benchmarks" / "review_bench.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("review_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cold_and_warm_runs_on_a_small_catalogue(catalogue, sparse_cfg, tmp_path):
    rb = load_bench()
    index_dataset(sparse_cfg, str(catalogue), collection="wdc")
    es, x, scorer, full = rb.build(sparse_cfg, catalogue, tmp_path, 10, "catalogue")
    assert scorer is None and full is None
    bench = rb.Bench(es, x, 1)
    a, b = es.products[0].id, es.products[1].id
    assert bench.verdict(a, b) == (
        "match" if es.products[0].group == es.products[1].group else "no_match"
    )
    cold = rb.cold(bench, [20, 40], 10, 0)
    assert set(cold["queue"]) == {20, 40} and set(cold["random"]) == {20, 40}
    assert all(0 < f <= 1 for f in [*cold["queue"].values(), *cold["random"].values()])
    test_ids = {es.products[i].id for i in bench.rows["test"]}
    labs = rb.random_labels(bench, bench.not_test, 40, 0)
    assert labs and not test_ids & {x for lab in labs for x in (lab.a, lab.b)}
    full = bench.split_model(bench.rows["train"])
    t = bench.tuned(full)
    assert 0 < t < 1 and 0 < bench.f1(full, t) <= 1 and 0 < bench.ap(full) <= 1
    warm = rb.warm(bench, full, t, 20, 10, 0)
    assert {"base", "queue", "random", "queue_ap", "random_ap"} <= set(warm)
    res = {"itself_only": bench.f1([], 1.0), "cold": [cold], "warm": [warm],
           "full_train": {"test_f1": bench.f1(full, t), "test_ap": bench.ap(full)}}  # fmt: skip
    assert "| 40 |" in rb.table(res)


def test_split_setting_scores_as_search_eval(catalogue, sparse_cfg, tmp_path):
    """Within the splits: the full-train figures are search eval's own, and the bench's
    scorer gives its pair rule the test F1 search eval reported for it."""
    rb = load_bench()
    index_dataset(sparse_cfg, str(catalogue), collection="wdc")
    es, x, scorer, full = rb.build(sparse_cfg, catalogue, tmp_path, 10, "split")
    assert {"rule", "test_f1", "valid_f1", "pair_rule"} <= set(full)
    test = scorer.sets["test"]
    assert {p.fields.get("split") for p in test.products} == {"test"}
    boosters = rb.full_boosters(tmp_path)
    pair = full["pair_rule"]
    assert abs(scorer.f1(boosters, pair["threshold"]) - pair["test_f1"]) < 1e-4
    # each offer itself only: Shopee F1 counts the offer itself, 2 / (2 + its mates)
    mates = scorer.targets["test"].values()
    alone = sum(2 / (2 + len(m)) for m in mates) / len(mates)
    assert abs(scorer.f1([], 1.0) - alone) < 1e-9
    bench = rb.Bench(es, x, 1)
    bench.split = scorer
    cold = rb.cold(bench, [20], 10, 0)
    assert 0 < cold["queue"][20] <= 1 and 0 < cold["random"][20] <= 1
