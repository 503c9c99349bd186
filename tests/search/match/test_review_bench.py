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
    es, x = rb.build(sparse_cfg, catalogue, tmp_path, 10)
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
