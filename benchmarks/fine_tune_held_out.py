"""Is there a stacking leak in ``search eval --fine-tune text --match-pair``, and does
cross-fitting close it? Measured on a finished run, not asserted.

The recipe fine-tunes its text encoder on every train group, then fits the pair model on
the train split's candidate edges: the encoder has trained on those very pairs, so their
fine-tuned cosines may sit higher than valid's and test's, and the pair model may learn to
trust ``text_ft`` more than it deserves there. This script, on the run's own collection:

1. prints the quantiles of the true pairs' cosine per split, zero-shot ``text`` and
   fine-tuned ``text_ft`` (a leak shows as train above valid and test by more for
   ``text_ft`` than for ``text``);
2. trains two held-out encoders (cross-fitting): each of the same start model, loss
   (in-batch negatives), schedule and step count as the run's, on one half of the train
   groups (the stable group hash of ``search.match.tuning.folds.fold_of``), and encodes the
   train listings with each;
3. fits the pair model as ``search eval`` does (5 seeds, train folds of valid's size) and
   tunes the pair rules on valid, scored on valid and test, for:
   ``base`` (the recipe as it is), ``halffolds`` (folds cut inside each half: the layout
   ``cross`` needs, with the run's own vectors), ``cross`` (each train listing's ``text_ft``
   from the encoder that never saw its half) and ``drop`` (no ``text_ft`` column in the
   pair model), ``ftstats`` (the recipe plus ``text_ft``'s own neighbourhood columns: each
   side's top-k mean, std and margin, which the pair model has for the mean cosine only);
   with ``--swap MODEL``, ``swap``: every listing's ``text_ft`` replaced by
   MODEL's (another step count, say), the candidates kept as the run searched them::

    OMP_NUM_THREADS=2 nice -n 5 .venv/bin/python benchmarks/fine_tune_held_out.py \\
        runs/wdc-ft --work runs/held-out

The held-out encoders and vectors are kept in ``--work`` and reused by a re-run.
"""

from __future__ import annotations

import argparse
import json
import time
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np

VECTOR = "text_ft"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a finished `search eval --fine-tune text` run folder")
    parser.add_argument("--work", required=True, help="where the held-out encoders go")
    parser.add_argument("--variants", default="base,halffolds,cross,drop")
    parser.add_argument("--swap", help="a text model whose vectors replace text_ft (swap)")
    opts = parser.parse_args()

    from pair_model_variants import edge_sets

    run, work = Path(opts.run), Path(opts.work)
    record = json.loads(next((run / "fine-tune").glob("text-*/fine-tune.json")).read_text())
    sets, cap, dataset = edge_sets(run)
    products = list(dataset.products())
    print("leak: true pairs' cosine per split, quantiles 10/25/50/75")
    for name in ("text", VECTOR):
        for split in ("train", "valid", "test"):
            print(f"  {name:8s} {split:6s} {quantiles(sets[split], name)}")
    held = held_out_vectors(dataset, products, record, work)
    if opts.swap:
        sets = swapped(sets, opts.swap, record)
        for split in ("train", "valid", "test"):
            print(f"  swapped  {split:6s} {quantiles(sets[split], VECTOR)}")
    for variant in opts.variants.split(","):
        start = time.perf_counter()
        valid_f1, test_f1, rule = pair_variant(variant, sets, held, cap)
        print(f"{variant}: {rule} valid {valid_f1:.4f} test {test_f1:.4f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip


def quantiles(es, name: str) -> str:
    """The true pairs' cosine of ``name`` in an edge set, quantiles 10/25/50/75."""
    mat = es.store.dense[name]
    pos = [float(mat[i] @ mat[j]) for i, js in es.targets().items() for j in js]
    return " ".join(f"{v:.3f}" for v in np.quantile(pos, [0.1, 0.25, 0.5, 0.75]))


def half_of(product) -> int:
    from search.match.tuning.folds import fold_of

    return fold_of(product.group, product.id, 2)


def held_out_vectors(dataset, products, record: dict, work: Path) -> dict[str, np.ndarray]:
    """Each train listing's vector from the encoder trained on the other half's groups
    (same model, loss, schedule and step as the run's), by listing id."""
    from transformers import TrainerCallback

    from retrieval.encoders.base import build_encoder
    from training.text import TextBiencoderConfig, build_rows, train_text_biencoder

    step, by_id = int(record["best_step"]), {p.id: p for p in products}
    queries = [q for q in dataset.queries("train") if q.matches]
    train = [p for p in products if p.fields.get("split") == "train"]
    out: dict[str, np.ndarray] = {}
    for h in (0, 1):  # model h trains on half h, encodes half 1 - h
        folder, cache = work / f"half{h}", work / f"half{h}.npz"
        if not cache.is_file():

            class Stop(TrainerCallback):
                def on_step_end(self, args, state, control, **kwargs):
                    if state.global_step >= step:
                        control.should_training_stop = True
                    return control

            rows = build_rows([q for q in queries if half_of(q.product) == h], by_id)
            cfg = TextBiencoderConfig(batch_size=32, lr=5e-5, warmup=0.05, max_steps=500,
                                      save_steps=10_000, keep=1, seed=0)  # fmt: skip
            train_text_biencoder(rows, record["model"], folder, cfg, callbacks=[Stop()], quiet=True)
            other = [p for p in train if half_of(p) != h]
            options = "".join(f",{k}={v}" for k, v in record.get("options", {}).items())
            got = build_encoder(f"text:{folder}{options},name=x").encode(other).vectors["x"]
            vecs = np.stack([v if v is not None else np.zeros(384, np.float32) for v in got])
            np.savez(cache, ids=np.array([p.id for p in other]), vectors=vecs)
        with np.load(cache, allow_pickle=False) as f:
            out.update(zip(f["ids"].tolist(), f["vectors"]))
    return out


def swapped(sets: dict, model: str, record: dict) -> dict:
    """Each edge set with ``text_ft`` encoded by ``model``, its edges scored again."""
    from retrieval.encoders.base import build_encoder
    from search.match.edges import score_edges

    options = "".join(f",{k}={v}" for k, v in record.get("options", {}).items())
    encoder = build_encoder(f"text:{model}{options},name=x")
    out = {}
    for split, es in sets.items():
        got = encoder.encode(es.products).vectors["x"]
        mat = np.stack([v if v is not None else np.zeros(encoder.dim, np.float32) for v in got])
        store = replace(es.store, dense={**es.store.dense, VECTOR: mat.astype(np.float32)})
        edges = score_edges(store, es.edges.src, es.edges.dst, es.weights)
        out[split] = replace(es, store=store, edges=edges, rounds={})
    return out


def pair_variant(variant: str, sets: dict, held: dict, cap: int) -> tuple[float, float, str]:
    """The pair model fitted as ``search eval`` fits it, but for ``variant``; the rule chosen
    on valid and its valid and test F1."""
    from search.match.edges import score_edges
    from search.match.pair_model import NEIGHBOURS, columns
    from search.match.tuning.folds import fold_count, folds
    from search.match.tuning.menu import choose, pair_rules, tune_all
    from search.match.tuning.pair import targets
    from training.match_pair import SEEDS, train_pair_models

    train, valid, test = sets["train"], sets["valid"], sets["test"]
    parts = max(2, fold_count(train.n, valid.n))
    if variant == "cross":
        mat = train.store.dense[VECTOR].copy()
        for i, p in enumerate(train.products):
            if p.id in held:
                mat[i] = held[p.id] / max(np.linalg.norm(held[p.id]), 1e-12)
        store = replace(train.store, dense={**train.store.dense, VECTOR: mat})
        edges = score_edges(store, train.edges.src, train.edges.dst, train.weights)
        train = replace(train, store=store, edges=edges, rounds={})
    cut = folds(train, parts) if variant in ("base", "drop", "ftstats") else halves(train, parts)
    cols = columns(list(valid.weights))
    keep = [i for i, c in enumerate(cols) if not (variant == "drop" and VECTOR in c)]
    names = [cols[i] for i in keep] + (list(STATS) if variant == "ftstats" else [])

    def x(es) -> np.ndarray:
        got = es.features(NEIGHBOURS)[:, keep]
        return np.column_stack([got, own_stats(es)]) if variant == "ftstats" else got

    rows = [(x(f), targets(f, None)[0]) for f in cut]
    boosters = train_pair_models(rows, names, seeds=SEEDS)
    valid.add_pair(boosters, x(valid))
    test.add_pair(boosters, x(test))
    best = choose(tune_all(pair_rules(cap), valid, test, "stage2"))
    return best.valid.f1, best.test.f1, best.rule.name


STATS = tuple(f"ft_{c}" for c in ("src_mean", "src_std", "dst_mean", "dst_std", "src_margin",
                                   "dst_margin"))  # fmt: skip


def own_stats(es) -> np.ndarray:
    """``text_ft``'s neighbourhood columns of every edge (as ``pair_model`` has for the mean)."""
    from search.match.edges import top_stats
    from search.match.pair_model import NEIGHBOURS

    sims = es.edges.sims[VECTOR].astype(np.float64)
    src, dst = es.edges.src, es.edges.dst
    m, sd, best = top_stats(src, sims, es.n, NEIGHBOURS)
    return np.column_stack([m[src], sd[src], m[dst], sd[dst], best[src] - sims, best[dst] - sims])


def halves(es, parts: int) -> list:
    """``folds`` cut inside each half of the groups (no fold mixes two encoders)."""
    from search.match.edges import ranks, score_edges

    each = max(1, round(parts / 2))
    inner = [zlib.crc32(f"{p.group or p.id}\x1fin".encode()) % each for p in es.products]
    part = np.array([half_of(p) for p in es.products]) * each + np.array(inner)
    out = []
    for f in range(2 * each):
        rows = np.flatnonzero(part == f)
        new = np.full(es.n, -1, dtype=np.int64)
        new[rows] = np.arange(len(rows))
        sub = es.edges.select((part[es.edges.src] == f) & (part[es.edges.dst] == f))
        keep = np.zeros(len(sub), dtype=bool)
        for name in es.weights:
            keep |= ranks(sub.src, sub.sims[name]) <= es.k
        sub = sub.select(keep)
        store = es.store.subset(rows)
        edges = score_edges(store, new[sub.src], new[sub.dst], es.weights)
        products = [es.products[i] for i in rows]
        out.append(replace(es, products=products, store=store, queries=np.arange(len(rows)),
                           edges=edges, rounds={}, filters=None, allowed=None))  # fmt: skip
    return out


if __name__ == "__main__":
    main()
