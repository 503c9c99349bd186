"""benchmarks/review_bench.py on a small catalogue: the simulated reviewer answers from
the groups, the cold start reviews the test split it is scored on (its candidate pairs
and nothing else), the warm-start queue walks the train-fold matcher's run over the
same split, and the bench's scorer gives search eval's pair rule its own test F1."""

from __future__ import annotations

from helpers.benches import load_bench

from search.indexing import index_dataset


def test_split_scorer_is_search_eval(catalogue, sparse_cfg, tmp_path):
    """The full-train figures are search eval's own, and the bench's scorer gives its
    pair rule the test F1 search eval reported; verdicts of every candidate pair make
    the decision the groups' own among the candidates."""
    rb = load_bench("review_bench")
    index_dataset(sparse_cfg, str(catalogue), collection="wdc")
    scorer, full = rb.build(sparse_cfg, catalogue, tmp_path, 10)
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
    bench = rb.Bench(scorer, 1)
    cands = bench.candidates()
    every = {}
    for i, j in zip(cands.edges.src.tolist(), cands.edges.dst.tolist()):
        lab = bench.label(cands.products[i].id, cands.products[j].id)
        every[lab.pair] = lab
    truth = scorer.f1(boosters, pair["threshold"], labels=every)
    # every mate reachable by a candidate edge is matched, nothing else: at least the model's
    assert truth >= scorer.f1(boosters, pair["threshold"]) and truth > alone


def test_cold_and_warm_on_a_small_catalogue(catalogue, sparse_cfg, tmp_path):
    rb = load_bench("review_bench")
    index_dataset(sparse_cfg, str(catalogue), collection="wdc")
    scorer, full = rb.build(sparse_cfg, catalogue, tmp_path, 10)
    bench = rb.Bench(scorer, 1)
    test = scorer.sets["test"].products
    assert bench.verdict(test[0].id, test[1].id) == (
        "match" if test[0].group == test[1].group else "no_match"
    )
    # the warm start's fold is one of search eval's train folds: train listings, whole groups
    fold_groups = {p.group for p in bench.fold.products}
    assert {p.fields.get("split") for p in bench.fold.products} == {"train"}
    others = [p for f in scorer.train_folds[1:] for p in f.products]
    assert len(scorer.train_folds) >= 2 and not fold_groups & {p.group for p in others}
    assert rb.Bench(scorer, 1, fold=1).fold is scorer.train_folds[1]
    cands = bench.candidates()
    assert all(p.group is None for p in cands.products)
    test_ids = {p.id for p in scorer.sets["test"].products}
    assert {p.id for p in cands.products} == test_ids
    cold = rb.cold(bench, [20, 40], 10, 0)
    assert set(cold["random"]) == {20, 40} and set(cold["queue"]) == {20, 40}
    for figures in [*cold["queue"].values(), *cold["random"].values()]:
        assert 0 < figures["f1"] <= 1 and 0 < figures["verdicts"] <= 1
        assert 0 <= figures["matches"] <= 40
    base = bench.fold_model()
    t = scorer.tuned(base)
    assert 0 < t < 1 and 0 < scorer.f1(base, t) <= 1 and 0 < scorer.ap(base) <= 1
    warm = rb.warm(bench, base, t, 20, 10, 2)
    assert len(warm["random"]) == 2 and warm["base"] == round(scorer.f1(base, t), 4)
    for figures in [warm["queue"], *warm["random"]]:
        assert {"verdicts", "rows", "rows_verdicts", "matches"} <= set(figures)
    res = {"itself_only": scorer.f1([], 1.0), "cold": [cold], "warm": warm,
           "full_train": {"test_f1": scorer.f1(base, t), "test_ap": scorer.ap(base)}}  # fmt: skip
    table = rb.table(res)
    assert "| 20 |" in table and "| 40 |" in table and "kept as verdicts" in table
