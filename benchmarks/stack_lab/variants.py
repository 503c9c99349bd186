# ruff: noqa
# Lab record of the stacking study (README, Measured): kept as run, paths as used then.
"""Stacking variants on cached candidates + CE scores (lab only)."""

import math
import os
import pickle
import sys

sys.path.insert(0, "/work/wt/s12")
import lightgbm as lgb
import numpy as np

from rerank.pair_features import FEATURES
from rerank.pair_gbdt import feature_rows
from retrieval.metrics import hit_rate_at_k, mrr_at_k, recall_at_k
from retrieval.types import queries_to_qrels
from training.pair_gbdt import GbdtParams

data = {
    s: pickle.loads(open(sys.argv[1].replace(".pkl", "." + s), "rb").read())
    for s in ("train", "valid", "test")
}
KTR = int(os.environ.get("KTR", 50))
KTE = int(os.environ.get("KTE", 100))


def prep(split, k):
    qs, rows = data[split]
    rows = [r[:k] for r in rows]
    pairs = [(q.product, c) for q, r in zip(qs, rows) for c in r]
    feats = feature_rows(pairs)
    for f, (_q, c) in zip(feats, pairs):
        f["ce"] = c.features["ce"]
    # list features of the CE score
    i = 0
    for _q, r in zip(qs, rows):
        seg = feats[i : i + len(r)]
        if seg:
            ces = [f["ce"] for f in seg]
            top = max(ces)
            order = np.argsort(-np.array(ces))
            for rank, j in enumerate(order):
                seg[j]["ce_rank"] = rank + 1
            for f in seg:
                f["ce_gap"] = top - f["ce"]
        i += len(r)
    y = np.array([int(c.id in set(q.matches)) for q, r in zip(qs, rows) for c in r], float)
    groups = [len(r) for r in rows]
    return dict(qs=qs, rows=rows, feats=feats, y=y, groups=groups)


S = {s: prep(s, KTR if s != "test" else KTE) for s in ("train", "valid", "test")}
SIMS = sorted(k for k in S["train"]["feats"][0] if k.startswith("sim_"))


def X(split, cols):
    return np.array([[f.get(c, math.nan) for c in cols] for f in S[split]["feats"]], float)


def metrics(split, scores, idx=None):
    qs, rows = S[split]["qs"], S[split]["rows"]
    run, i = {}, 0
    for q, r in zip(qs, rows):
        run[q.id] = {c.id: float(scores[i + j]) for j, c in enumerate(r)}
        i += len(r)
    sel = qs if idx is None else [qs[j] for j in idx]
    run = {q.id: run[q.id] for q in sel}
    qrels = queries_to_qrels(sel)
    return (
        round(recall_at_k(run, qrels, 1), 3),
        round(hit_rate_at_k(run, qrels, 1), 3),
        round(mrr_at_k(run, qrels, 10), 3),
    )


def fit(tr_x, tr_y, tr_g, va=None, rounds=None, params=None):
    p = (params or GbdtParams()).lightgbm()
    d = lgb.Dataset(tr_x, tr_y, group=tr_g, free_raw_data=False)
    if va is not None:
        v = lgb.Dataset(va[0], va[1], group=va[2], reference=d)
        b = lgb.train(
            p,
            d,
            1000,
            valid_sets=[v],
            callbacks=[lgb.early_stopping(50, first_metric_only=True, verbose=False)],
        )
        return b, b.best_iteration
    b = lgb.train(p, d, rounds)
    return b, rounds


def slice_rows(split, qidx):
    g = S[split]["groups"]
    starts = np.cumsum([0] + g)
    rows = np.concatenate([np.arange(starts[j], starts[j + 1]) for j in qidx])
    return rows, [g[j] for j in qidx]


BASE = SIMS + list(FEATURES)
res = {}


def report(name, test_scores, valid_scores=None):
    v = metrics("valid", valid_scores) if valid_scores is not None else None
    t = metrics("test", test_scores)
    print(f"{name:45s} valid(r1,h1,mrr) {v}  test {t}", flush=True)


# CE alone, and how it looks in each split
for s in ("train", "valid", "test"):
    print(
        "CE alone",
        s,
        metrics(s, np.array([f["ce"] for f in S[s]["feats"]])),
        "stage1",
        metrics(s, np.array([-f["stage1_rank"] for f in S[s]["feats"]])),
    )


def trainfit(cols):
    b, n = fit(
        X("train", cols),
        S["train"]["y"],
        S["train"]["groups"],
        (X("valid", cols), S["valid"]["y"], S["valid"]["groups"]),
    )
    return b, n


for name, cols in [
    ("A pair-gbdt (train)", BASE),
    ("B stack in-sample CE (train)", SIMS + ["ce"] + list(FEATURES)),
    ("B2 stack +ce list feats (train)", SIMS + ["ce", "ce_rank", "ce_gap"] + list(FEATURES)),
]:
    b, n = trainfit(cols)
    report(f"{name} [{n} trees]", b.predict(X("test", cols)), b.predict(X("valid", cols)))
    if name.startswith("A"):
        base_b = b


# valid-only stacker with CV for the number of trees; out-of-fold valid scores
def cv_valid(cols, folds=5, extra=None, params=None):
    nq = len(S["valid"]["qs"])
    rng = np.random.default_rng(0)
    perm = rng.permutation(nq)
    vx = X("valid", cols) if extra is None else np.column_stack([X("valid", cols), extra["valid"]])
    oof = np.zeros(len(S["valid"]["y"]))
    its = []
    for f in range(folds):
        te = np.sort(perm[f::folds])
        tr = np.sort(np.setdiff1d(perm, te))
        rtr, gtr = slice_rows("valid", tr)
        rte, gte = slice_rows("valid", te)
        b, n = fit(
            vx[rtr], S["valid"]["y"][rtr], gtr, (vx[rte], S["valid"]["y"][rte], gte), params=params
        )
        oof[rte] = b.predict(vx[rte], num_iteration=n)
        its.append(n)
    n = int(np.mean(its))
    b, _ = fit(vx, S["valid"]["y"], S["valid"]["groups"], rounds=max(n, 1), params=params)
    tx = X("test", cols) if extra is None else np.column_stack([X("test", cols), extra["test"]])
    return oof, b.predict(tx), n


for name, cols in [
    ("C valid-only stack, all feats", SIMS + ["ce"] + list(FEATURES)),
    ("C0 valid-only, no CE", BASE),
]:
    oof, t, n = cv_valid(cols)
    report(f"{name} [{n} trees, valid=OOF]", t, oof)

# D: base gbdt (train) score + CE, second level on valid
base_score = {s: base_b.predict(X(s, BASE)) for s in ("valid", "test")}


def logit(p):
    return np.log(np.clip(p, 1e-6, 1 - 1e-6) / (1 - np.clip(p, 1e-6, 1 - 1e-6)))


from sklearn.linear_model import LogisticRegression


def lr_feats(s):
    ce = np.array([f["ce"] for f in S[s]["feats"]])
    return np.column_stack([logit(base_score[s]), logit(ce)])


nq = len(S["valid"]["qs"])
perm = np.random.default_rng(0).permutation(nq)
oof = np.zeros(len(S["valid"]["y"]))
for f in range(5):
    te = np.sort(perm[f::5])
    tr = np.sort(np.setdiff1d(perm, te))
    rtr, _ = slice_rows("valid", tr)
    rte, _ = slice_rows("valid", te)
    m = LogisticRegression(C=1.0).fit(lr_feats("valid")[rtr], S["valid"]["y"][rtr])
    oof[rte] = m.decision_function(lr_feats("valid")[rte])
m = LogisticRegression(C=1.0).fit(lr_feats("valid"), S["valid"]["y"])
print("D coefs", m.coef_, m.intercept_)
report("D logreg(base gbdt, CE) on valid [valid=OOF]", m.decision_function(lr_feats("test")), oof)
for w in (0.25, 0.5, 1.0, 2.0):
    report(
        f"E fixed sum logit(base)+{w}*logit(CE)",
        logit(base_score["test"]) + w * logit(np.array([f["ce"] for f in S["test"]["feats"]])),
        logit(base_score["valid"]) + w * logit(np.array([f["ce"] for f in S["valid"]["feats"]])),
    )
# F: valid stacker whose inputs are base score + ce + a few feats
extra = {s: logit(base_score[s])[:, None] for s in ("valid", "test")}
oof, t, n = cv_valid(["ce", "ce_rank", "ce_gap", "stage1_rank"], extra=extra)
report(f"F valid gbdt(base, ce, ce list, s1 rank) [{n}]", t, oof)


# D2: numpy Newton logistic regression with list features of CE (what the repo would ship)
def newton_lr(x, y, l2=1.0, iters=50):
    mu, sd = x.mean(0), x.std(0) + 1e-9
    z = np.column_stack([np.ones(len(x)), (x - mu) / sd])
    w = np.zeros(z.shape[1])
    for _ in range(iters):
        p = 1 / (1 + np.exp(-z @ w))
        g = z.T @ (p - y) + l2 * np.r_[0, w[1:]]
        h = (z * (p * (1 - p))[:, None]).T @ z + l2 * np.diag(np.r_[0, np.ones(len(w) - 1)])
        step = np.linalg.solve(h, g)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return lambda xx: np.column_stack([np.ones(len(xx)), (xx - mu) / sd]) @ w


def feats2(s, which):
    ce = np.array([f["ce"] for f in S[s]["feats"]])
    cols = [logit(base_score[s]), logit(ce)]
    if "gap" in which:
        cols.append(np.array([f["ce_gap"] for f in S[s]["feats"]]))
    if "rank" in which:
        cols.append(np.log(np.array([f["ce_rank"] for f in S[s]["feats"]])))
    if "bgap" in which:
        out, i = [], 0
        for g in S[s]["groups"]:
            seg = logit(base_score[s][i : i + g])
            out.extend(seg.max() - seg)
            i += g
        cols.append(np.array(out))
    return np.column_stack(cols)


for which in ((), ("gap",), ("gap", "rank"), ("gap", "bgap"), ("gap", "rank", "bgap")):
    oof = np.zeros(len(S["valid"]["y"]))
    for f in range(5):
        te = np.sort(perm[f::5])
        tr = np.sort(np.setdiff1d(perm, te))
        rtr, _ = slice_rows("valid", tr)
        rte, _ = slice_rows("valid", te)
        oof[rte] = newton_lr(feats2("valid", which)[rtr], S["valid"]["y"][rtr])(
            feats2("valid", which)[rte]
        )
    m = newton_lr(feats2("valid", which), S["valid"]["y"])
    report(f"D2 newton LR base+CE {which} [OOF]", m(feats2("test", which)), oof)


def top_ok(split, scores):
    qs, rows = S[split]["qs"], S[split]["rows"]
    out, i = [], 0
    for q, r in zip(qs, rows):
        seg = scores[i : i + len(r)]
        out.append(bool(len(r)) and r[int(np.argmax(seg))].id in set(q.matches))
        i += len(r)
    return np.array(out)


for s in ("valid", "test"):
    g = top_ok(s, base_score[s])
    c = top_ok(s, np.array([f["ce"] for f in S[s]["feats"]]))
    both_in = [any(cc.id in set(q.matches) for cc in r) for q, r in zip(S[s]["qs"], S[s]["rows"])]
    print(
        s,
        "n",
        len(g),
        "gbdt ok",
        g.sum(),
        "ce ok",
        c.sum(),
        "gbdt wrong & ce ok",
        (~g & c).sum(),
        "gbdt ok & ce wrong",
        (g & ~c).sum(),
        "no match in K",
        len(g) - sum(both_in),
    )
