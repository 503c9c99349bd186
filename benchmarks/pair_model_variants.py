"""The pair model of a finished ``search eval --match-pair`` run, refitted in variants and
scored as ``search eval`` scores it: measured, not asserted.

On the run's own collection (its stage-1 edges searched again, as ``search eval`` searches
them), the pair model is fitted on the train split's folds of valid's size and the pair
rules tuned on valid, then scored on valid and test, for each variant:

- ``base``: the pair model as ``search eval`` fits it (``training.match_pair.SEEDS``
  seeds, every column of ``search.match.pair_model.columns``);
- ``nomargins``: without the list-margin columns (``pair_model.margin_columns``);
- ``seedsN``: N seeds averaged instead of ``SEEDS``;
- ``lrX``: LightGBM learning rate X instead of ``training.match_pair.LEARNING_RATE``;
- ``multiP``: P partitions of the train groups into folds (another stable hash salt each),
  one seed fitted on each and the P averaged: the neighbourhoods of the train edges
  differ between partitions, so the seeds see different rows.

A variant may end in ``@K``: its LightGBM seeds start at ``5 K`` (the spread between
fits of one setting)::

    nice -n 5 .venv/bin/python benchmarks/pair_model_variants.py runs/wdc-ft \\
        --variants nomargins,base,nomargins@1,base@1

The features and the rule tuning are the product's own; a run's figures do not depend on
the process (``PYTHONHASHSEED``).
"""

from __future__ import annotations

import argparse
import json
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a finished `search eval --match-pair` run folder")
    parser.add_argument("--variants", default="nomargins,base")
    opts = parser.parse_args()
    sets, cap, _ = edge_sets(Path(opts.run))
    bench = Bench(sets, cap)
    print({k: (v.n, len(v.edges)) for k, v in sets.items()}, flush=True)
    for variant in opts.variants.split(","):
        start = time.perf_counter()
        rule, valid_f1, test_f1 = bench.run(variant)
        print(f"{variant}: {rule} valid {valid_f1:.4f} test {test_f1:.4f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip


def edge_sets(run: Path) -> tuple[dict, int, Any]:
    """The run's train, valid and test edge sets, the cap of a predicted group, and the
    run's dataset (``benchmarks/fine_tune_held_out.py`` starts from them too)."""
    from retrieval.data import open_dataset
    from retrieval.retriever import Retriever
    from search.collection import open_collection
    from search.config import load_config
    from search.match.edgeset import weights_for
    from search.match.matcher import Matcher
    from search.match.tuning.menu import largest_group
    from search.match.tuning.splits import split_sets

    settings = json.loads((run / "settings.json").read_text())
    dataset = open_dataset(settings["dataset_path"])
    products = list(dataset.products())
    index, coll = open_collection(
        load_config(), dataset, settings["dataset_path"], products, None,
        settings["collection"], None,
    )  # fmt: skip
    try:
        retriever = Retriever.for_collection(index, coll.name)
        names = retriever.vector_names()
        template = Matcher(retriever.encoder_specs, names, weights_for(names), [], "", 20)
        splits = ["test", "valid", "train"]
        sets = split_sets(index, dataset, coll.name, template, splits, "valid", None, None)
    finally:
        index.close()
    labelled = [p for p in products if p.fields.get("split") in ("train", "valid")]
    return sets, largest_group(labelled), dataset


class Bench:
    """The edge sets, their features (computed once) and the train folds per partition."""

    def __init__(self, sets: dict, cap: int) -> None:
        from search.match.pair_model import NEIGHBOURS, columns
        from search.match.tuning.folds import fold_count

        self.train, self.valid, self.test, self.cap = (
            sets["train"],
            sets["valid"],
            sets["test"],
            cap,
        )
        self.cols = columns(list(self.valid.weights))
        self.parts = max(2, fold_count(self.train.n, self.valid.n))
        self.x = {s: sets[s].features(NEIGHBOURS) for s in ("valid", "test")}
        self.cuts: dict[str, list] = {}

    def folds(self, salt: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """The train folds' (features, targets) of the partition ``salt`` ("" as
        ``search eval`` cuts them)."""
        from search.match.pair_model import NEIGHBOURS
        from search.match.tuning import folds as cut
        from search.match.tuning.pair import targets

        if salt not in self.cuts:
            original = cut.fold_of
            if salt:
                cut.fold_of = lambda group, key, n: (
                    zlib.crc32(f"{group if group is not None else key}\x1f{salt}".encode()) % n
                )
            try:
                parts = cut.folds(self.train, self.parts)
            finally:
                cut.fold_of = original
            self.cuts[salt] = [(f.features(NEIGHBOURS), targets(f, None)[0]) for f in parts]
        return self.cuts[salt]

    def run(self, variant: str) -> tuple[str, float, float]:
        """The rule chosen on valid after fitting ``variant``, its valid and test F1."""
        from search.match.pair_model import margin_columns
        from search.match.tuning.menu import choose, pair_rules, tune_all
        from training import match_pair
        from training.match_pair import SEEDS, train_pair_models

        name, _, offset = variant.partition("@")
        first = 5 * int(offset or 0)
        keep = list(range(len(self.cols)))
        if name == "nomargins":
            drop = set(margin_columns(list(self.valid.weights)))
            keep = [i for i, c in enumerate(self.cols) if c not in drop]
        cols = [self.cols[i] for i in keep]

        def fit(rows: list, seeds: int, seed: int) -> list:
            rows = [(x[:, keep], y) for x, y in rows]
            return train_pair_models(rows, cols, seeds=seeds, first_seed=seed)

        if name in ("base", "nomargins"):
            boosters = fit(self.folds(""), SEEDS, first)
        elif name.startswith("lr"):
            kept, match_pair.LEARNING_RATE = match_pair.LEARNING_RATE, float(name[2:])
            try:
                boosters = fit(self.folds(""), SEEDS, first)
            finally:
                match_pair.LEARNING_RATE = kept
        elif name.startswith("seeds"):
            boosters = fit(self.folds(""), int(name[5:]), first)
        elif name.startswith("multi"):
            boosters = []
            for p in range(int(name[5:])):
                boosters += fit(self.folds(f"s{p}" if p else ""), 1, first + p)
        else:
            raise SystemExit(f"unknown variant {variant!r}")
        self.valid.add_pair(boosters, self.x["valid"][:, keep])
        self.test.add_pair(boosters, self.x["test"][:, keep])
        best = choose(tune_all(pair_rules(self.cap), self.valid, self.test, "stage2"))
        return best.rule.name, best.valid.f1, best.test.f1


if __name__ == "__main__":
    main()
