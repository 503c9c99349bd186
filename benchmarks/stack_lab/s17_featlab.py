# ruff: noqa
# Lab record of session 17 (README, Measured): kept as run, /tmp paths as used then.
"""Lab: pair-gbdt feature variants on cached stage-1 candidates (valid chooses)."""

import pickle, sys, re, math
import numpy as np

sys.path.insert(0, "/work/main")
import rerank.pair_features as pf
import rerank.pair_gbdt as pg
import training.pair_gbdt as tp
from training.pair_gbdt import GbdtParams, fit_pair_gbdt, label_candidates

SET = sys.argv[1]  # abt | wdc
VARS = sys.argv[2].split(",")
SEEDS = [0, 1, 2]
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

BASE = pf.FEATURES
orig_codes = pf.model_codes
REL_ALL = (
    "model_shared",
    "model_substring",
    "model_conflict",
    "char_tfidf",
    "title_jaccard",
    "char3_jaccard",
    "number_shared",
    "number_conflict",
    "sim_text",
    "sim_sparse",
)
import os

REL = REL_ALL if not os.environ.get("NOSIM") else REL_ALL[:-2]


def digit_codes(text):
    out = orig_codes(text)
    for tok in pf._COMPOUND_RE.findall(pf.normalize(text)):
        code = tok.replace("-", "").replace("/", "")
        if code.isdigit() and len(code) >= 6:
            out.add(code)
    return out


def make_rows(variant):
    rel = "rel" in variant
    cache = {}

    def feature_rows(pairs):
        key = hash(tuple((q.id, c.id) for q, c in pairs))
        if key in cache:
            return [dict(r) for r in cache[key]]
        rows = feature_rows_(pairs)
        cache[key] = rows
        return [dict(r) for r in rows]

    def feature_rows_(pairs):
        rows = [pf.pair_features(q, c) for q, c in pairs]
        for start, end in pg.query_runs(pairs):
            query = pairs[start][0].title or ""
            titles = [c.product.title or "" for _, c in pairs[start:end]]
            pf.list_features(rows[start:end], query, titles)
            if rel:
                run = rows[start:end]
                for f in REL:
                    vals = np.array([r.get(f, math.nan) for r in run], dtype=float)
                    v = np.where(np.isnan(vals), -np.inf, vals)
                    if len(v) < 2:
                        for r in run:
                            r[f"rel_{f}"] = math.nan
                        continue
                    order = np.argsort(-v)
                    best, second = v[order[0]], v[order[1]]
                    for i, r in enumerate(run):
                        other = second if i == order[0] else best
                        d = v[i] - other
                        r[f"rel_{f}"] = float(d) if np.isfinite(d) else math.nan
        return rows

    return feature_rows


def setup(variant):
    pf.model_codes = digit_codes if "digits" in variant else orig_codes
    feats = BASE + (tuple(f"rel_{f}" for f in REL) if "rel" in variant else ())
    tp.FEATURES = feats
    pg.feature_rows = make_rows(variant)
    tp.feature_rows = pg.feature_rows


def ex(s):
    qs, rows = D[s]
    k = KS[s]
    return [(q.product, r[:k], label_candidates(q.matches, r[:k])) for q, r in zip(qs, rows)]


def evaluate(model, s):
    qs, rows = D[s]
    k = KS[s]
    r1 = h1 = mrr = 0.0
    n = 0
    pairs = [(q.product, c) for q, r in zip(qs, rows) for c in r[:k]]
    sc = model.predict(pg.feature_rows(pairs))
    i = 0
    for q, r in zip(qs, rows):
        r = r[:k]
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
    return round(r1 / n, 4), round(h1 / n, 4), round(mrr / n, 4)


for variant in VARS:
    obj = "lambdarank" if "lr" in variant.split("+") else "binary"
    setup(variant)
    res = {"valid": [], "test": []}
    for seed in SEEDS:
        model = fit_pair_gbdt(
            ex("train"), ex("valid"), GbdtParams(seed=seed, objective=obj, num_threads=2), {}
        )
        for s in res:
            res[s].append(evaluate(model, s))
    out = {
        s: tuple(round(float(np.mean([x[j] for x in v])), 4) for j in range(3))
        for s, v in res.items()
    }
    print(
        SET,
        f"{variant:20s}",
        "valid R@1/hit@1/MRR",
        out["valid"],
        "test",
        out["test"],
        "trees",
        model.info["best_iteration"],
        flush=True,
    )
