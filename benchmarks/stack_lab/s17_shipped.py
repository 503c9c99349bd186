# ruff: noqa
# Lab record of session 17 (README, Measured): kept as run, /tmp paths as used then.
"""The shipped pair-gbdt (this checkout's features and default objective) on the cached
candidates of s17_featlab.py: mean of seeds 0-2, valid and test (R@1, hit@1, MRR@10)."""

import pickle, sys
import numpy as np

sys.path.insert(0, "/work/main")
from rerank.pair_gbdt import feature_rows
from training.pair_gbdt import GbdtParams, fit_pair_gbdt, label_candidates

SET = sys.argv[1]
OBJ = sys.argv[2] if len(sys.argv) > 2 else None
if SET == "abt":
    D = {
        s: pickle.loads(open(f"/tmp/s12/lab/abt_hybrid.{s}", "rb").read())
        for s in ("train", "valid", "test")
    }
    KS = {"train": 50, "valid": 50, "test": 100}
else:
    D = {
        s: pickle.loads(open(f"/tmp/s17/wdc.{s}", "rb").read()) for s in ("train", "valid", "test")
    }
    KS = {"train": 50, "valid": 50, "test": 20}
ROWS = {}
for s, (qs, rows) in D.items():
    pairs = [(q.product, c) for q, r in zip(qs, rows) for c in r[: KS[s]]]
    ROWS[s] = feature_rows(pairs)


def ex(s):
    qs, rows = D[s]
    return [
        (q.product, r[: KS[s]], label_candidates(q.matches, r[: KS[s]])) for q, r in zip(qs, rows)
    ]


def evaluate(model, s):
    qs, rows = D[s]
    sc = model.predict(ROWS[s])
    r1 = h1 = mrr = 0.0
    n = i = 0
    for q, r in zip(qs, rows):
        r = r[: KS[s]]
        s_ = sc[i : i + len(r)]
        i += len(r)
        if not q.matches:
            continue
        n += 1
        m = set(q.matches)
        order = np.argsort(-np.array(s_), kind="stable")
        top = r[order[0]].id
        r1 += (top in m) / len(m)
        h1 += top in m
        for rank, j in enumerate(order[:10]):
            if r[j].id in m:
                mrr += 1 / (rank + 1)
                break
    return r1 / n, h1 / n, mrr / n


res = {"valid": [], "test": []}
for seed in (0, 1, 2):
    params = GbdtParams(seed=seed, num_threads=2, **({"objective": OBJ} if OBJ else {}))
    model = fit_pair_gbdt(ex("train"), ex("valid"), params, {})
    for s in res:
        res[s].append(evaluate(model, s))
out = {
    s: tuple(round(float(np.mean([x[j] for x in v])), 4) for j in range(3)) for s, v in res.items()
}
print(SET, params.objective, "valid R@1/hit@1/MRR", out["valid"], "test", out["test"], flush=True)
