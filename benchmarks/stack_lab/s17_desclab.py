# ruff: noqa
# Lab record of session 17 (README, Measured): kept as run, /tmp paths as used then.
"""Lab: description-aware code features on top of the shipped pair-gbdt (v3)."""

import os, pickle, sys, math
import numpy as np

sys.path.insert(0, "/work/main")
import rerank.pair_features as pf
import rerank.pair_gbdt as pg
import training.pair_gbdt as tp
from training.pair_gbdt import GbdtParams, fit_pair_gbdt, label_candidates

SET = sys.argv[1]
VARIANT = sys.argv[2]
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
EXTRA = ("desc_code_hit", "desc_code_hit_margin") if VARIANT == "desc" else ()
orig_rows = pg.feature_rows


def desc_hit(q, c):
    codes = pf.model_codes(q.title or "") | pf.part_numbers(q.title or "")
    desc = c.fields.get("description") or ""
    if not codes or not desc:
        return math.nan
    text = pf.squash((c.title or "") + " " + str(desc))
    return sum(code in text for code in codes) / len(codes)


def feature_rows(pairs):
    rows = orig_rows(pairs)
    if EXTRA:
        for r, (q, c) in zip(rows, pairs):
            r["desc_code_hit"] = desc_hit(q, c.product)
        for start, end in pg.query_runs(pairs):
            run = rows[start:end]
            for r, v in zip(run, pf.margins([r["desc_code_hit"] for r in run])):
                r["desc_code_hit_margin"] = v
    return rows


pg.feature_rows = feature_rows
tp.feature_rows = feature_rows
tp.FEATURES = pf.FEATURES + EXTRA
ROWS = {}
for s, (qs, rows) in D.items():
    ROWS[s] = feature_rows([(q.product, c) for q, r in zip(qs, rows) for c in r[: KS[s]]])


def ex(s):
    qs, rows = D[s]
    return [
        (q.product, r[: KS[s]], label_candidates(q.matches, r[: KS[s]])) for q, r in zip(qs, rows)
    ]


def evaluate(model, s):
    qs, rows = D[s]
    sc = model.predict(ROWS[s])
    r1 = h1 = 0.0
    n = i = 0
    for q, r in zip(qs, rows):
        r = r[: KS[s]]
        s_ = sc[i : i + len(r)]
        i += len(r)
        if not q.matches:
            continue
        n += 1
        m = set(q.matches)
        top = r[int(np.argmax(s_))].id
        r1 += (top in m) / len(m)
        h1 += top in m
    return r1 / n, h1 / n


res = {"valid": [], "test": []}
for seed in (0, 1, 2):
    model = fit_pair_gbdt(ex("train"), ex("valid"), GbdtParams(seed=seed, num_threads=2), {})
    for s in res:
        res[s].append(evaluate(model, s))
out = {
    s: tuple(round(float(np.mean([x[j] for x in v])), 4) for j in range(2)) for s, v in res.items()
}
print(SET, VARIANT, "valid R@1/hit@1", out["valid"], "test", out["test"], flush=True)
