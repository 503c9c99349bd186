# ruff: noqa
# Lab record of session 18 (README, Measured): kept as run, /tmp paths as used then.
"""pair-gbdt stacked with one or two cross-encoders on cached hybrid candidates.

Step `score CE COL`: scores the cached Abt-Buy valid (K=50) / test (K=100) candidates
(`cache_hybrid.py`) with a cross-encoder folder as the shipped reranker loads it, into
/tmp/s18/abt.{valid,test} (column COL). Step `fit COL [COL ...]`: the shipped pair-gbdt
(seeds 0-2, train rows, valid stops the boosting) and the shipped blend over it and the
given columns; valid figures out of fold (`blend_out_of_fold`), test with the blend fitted
on all of valid. R@1, hit@1, MRR@10, means over the seeds."""

import os, pickle, sys, time
import numpy as np

sys.path.insert(0, "/work/main")
from rerank.base import build_reranker
from rerank.pair_gbdt import feature_rows
from training.pair_gbdt import (
    GbdtParams,
    blend_out_of_fold,
    blend_rows,
    fit_blend,
    fit_pair_gbdt,
    label_candidates,
)

KS = {"train": 50, "valid": 50, "test": 100}


def load(s):
    p = f"/tmp/s18/abt.{s}"
    src = p if os.path.exists(p) else f"/tmp/s12/lab/abt_hybrid.{s}"
    qs, rows = pickle.loads(open(src, "rb").read())
    return qs, [r[: KS[s]] for r in rows]


def score(ce, col):
    r = build_reranker(f"cross-encoder:{ce},batch_size=64")
    for s in ("valid", "test"):
        qs, rows = load(s)
        pairs = [(q.product, c) for q, row in zip(qs, rows) for c in row]
        t = time.time()
        sc = r.score(pairs)
        for (_, c), v in zip(pairs, sc):
            c.features[col] = float(v)
        tmp = f"/tmp/s18/abt.{s}.tmp"
        open(tmp, "wb").write(pickle.dumps((qs, rows)))
        os.replace(tmp, f"/tmp/s18/abt.{s}")
        print(s, col, len(pairs), round(time.time() - t), "s", flush=True)


def examples(s):
    qs, rows = load(s)
    return [(q.product, r, label_candidates(q.matches, r)) for q, r in zip(qs, rows)]


def metrics(ex, scores):
    r1 = h1 = mrr = 0.0
    n = i = 0
    for _, cands, labels in ex:
        sc = np.array(scores[i : i + len(cands)])
        i += len(cands)
        pos = sum(labels)
        if not pos:
            continue
        n += 1
        order = np.argsort(-sc, kind="stable")
        h = labels[order[0]] > 0
        r1 += h / pos
        h1 += h
        for rank, j in enumerate(order[:10]):
            if labels[j] > 0:
                mrr += 1 / (rank + 1)
                break
    return np.array([r1 / n, h1 / n, mrr / n])


def misses(ex, scores):
    out, i = set(), 0
    for k, (_, cands, labels) in enumerate(ex):
        sc = np.array(scores[i : i + len(cands)])
        i += len(cands)
        if sum(labels) and not labels[int(np.argmax(sc))] > 0:
            out.add(k)
    return out


def fit(cols):
    tr, va, te = examples("train"), examples("valid"), examples("test")
    res = {}
    for seed in (0, 1, 2):
        model = fit_pair_gbdt(tr, va, GbdtParams(seed=seed, num_threads=2), {})
        base = {
            s: model.predict(feature_rows([(p, c) for p, cs, _ in e for c in cs]))
            for s, e in (("valid", va), ("test", te))
        }
        res.setdefault("pair-gbdt", []).append(
            (metrics(va, base["valid"]), metrics(te, base["test"]))
        )
        combos = [[c] for c in cols] + ([cols] if len(cols) > 1 else [])
        for combo in combos:
            rows = blend_rows(model, combo, va)
            oof = blend_out_of_fold(model, combo, va, rows=rows)
            blend = fit_blend(model, combo, va, rows=rows)
            xt, _, _ = blend_rows(model, combo, te)
            pt = blend.predict(xt)
            res.setdefault("+".join(combo), []).append((metrics(va, oof), metrics(te, pt)))
            if seed == 0:
                print(
                    "  seed 0",
                    "+".join(combo),
                    "coef",
                    np.round(blend.coef, 2),
                    "test misses",
                    sorted(misses(te, pt)),
                    flush=True,
                )
        if seed == 0:
            print("  seed 0 pair-gbdt test misses", sorted(misses(te, base["test"])), flush=True)
    for c in cols:
        print(
            c,
            "alone: valid",
            metrics(va, [x.features[c] for _, cs, _ in va for x in cs]).round(4),
            "test",
            metrics(te, [x.features[c] for _, cs, _ in te for x in cs]).round(4),
            "test misses",
            sorted(misses(te, [x.features[c] for _, cs, _ in te for x in cs])),
        )
    for name, v in res.items():
        va_m = np.mean([a for a, _ in v], 0).round(4)
        te_m = np.mean([b for _, b in v], 0).round(4)
        print(f"{name:30s} valid(oof) R@1/hit@1/MRR {va_m}  test {te_m}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "score":
        score(sys.argv[2], sys.argv[3])
    else:
        fit(sys.argv[2:])
