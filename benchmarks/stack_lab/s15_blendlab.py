# ruff: noqa
# Lab record of session 15 (README, Measured): kept as run, paths as used then.
"""Lab: blend variants on cached candidates with ce2 (new CE) scores."""

import pickle, sys
import numpy as np

sys.path.insert(0, "/work/wt/s13")
from rerank.pair_gbdt import feature_rows
from rerank.blend import Blend, blend_inputs, logit
from training.pair_gbdt import GbdtParams, fit_pair_gbdt, label_candidates

tag = sys.argv[1]
TR = pickle.loads(open("/tmp/s12/lab/abt_text.train", "rb").read())
D = {s: pickle.loads(open(f"/tmp/s13/abt_{tag}.{s}", "rb").read()) for s in ("valid", "test")}


def ex(d, k):
    qs, rows = d
    return [(q.product, r[:k], label_candidates(q.matches, r[:k])) for q, r in zip(qs, rows)]


model = fit_pair_gbdt(ex(TR, 50), ex(D["valid"], 50), GbdtParams(), {})
P = {}
for s, d in D.items():
    qs, rows = d
    pairs = [(q.product, c) for q, r in zip(qs, rows) for c in r]
    base = np.array(model.predict(feature_rows(pairs)))
    ce = np.array([c.features["ce2"] for _, c in pairs])
    y = np.array([int(c.id in set(q.matches)) for q, r in zip(qs, rows) for c in r], float)
    runs, at = [], 0
    for r in rows:
        runs.append((at, at + len(r)))
        at += len(r)
    P[s] = dict(qs=qs, rows=rows, base=base, ce=ce, y=y, runs=runs)


def r1(s, scores):
    d = P[s]
    tot = 0
    for q, (a, b), r in zip(d["qs"], d["runs"], d["rows"]):
        m = set(q.matches)
        if not r:
            continue
        top = r[int(np.argmax(scores[a:b]))].id
        tot += (top in m) / len(m)
    return round(tot / len(d["qs"]), 4)


def gap(z, runs):
    g = np.zeros_like(z)
    for a, b in runs:
        if b > a:
            g[a:b] = z[a:b].max() - z[a:b]
    return g


def feats(s, kind):
    d = P[s]
    x = blend_inputs(d["base"], [d["ce"]], d["runs"], [False])
    if kind in ("gap", "gap+rank"):
        x = np.column_stack([x, gap(logit(d["base"]), d["runs"])])
    if kind == "gap+rank":
        rk = np.zeros(len(d["ce"]))
        for a, b in d["runs"]:
            rk[a:b] = np.argsort(np.argsort(-d["ce"][a:b]))
        x = np.column_stack([x, np.minimum(rk, 5)])
    if kind == "prod":
        x = np.column_stack([x, logit(d["base"]) * logit(d["ce"])])
    return x


print("pair-gbdt", r1("valid", P["valid"]["base"]), r1("test", P["test"]["base"]))
print("ce", r1("valid", P["valid"]["ce"]), r1("test", P["test"]["ce"]))
nq = len(P["valid"]["qs"])
for kind in ("shipped", "gap", "gap+rank", "prod"):
    for l2 in (0.1, 1.0, 10.0):
        b = Blend.fit(feats("valid", kind), P["valid"]["y"], l2=l2)
        # 5-fold OOF on valid queries
        perm = np.random.default_rng(0).permutation(nq)
        oof = np.zeros(len(P["valid"]["y"]))
        X = feats("valid", kind)
        for f in range(5):
            te = set(perm[f::5].tolist())
            rows_te = np.concatenate([np.arange(*P["valid"]["runs"][j]) for j in sorted(te)])
            rows_tr = np.concatenate(
                [np.arange(*P["valid"]["runs"][j]) for j in range(nq) if j not in te]
            )
            bb = Blend.fit(X[rows_tr], P["valid"]["y"][rows_tr], l2=l2)
            oof[rows_te] = bb.predict(X[rows_te])
        print(
            f"{kind:9s} l2={l2:5} valid-oof {r1('valid', oof)} test {r1('test', np.array(b.predict(feats('test', kind))))} coef {np.round(b.coef, 2)}"
        )
b = Blend.fit(feats("valid", "shipped"), P["valid"]["y"])
st = np.array(b.predict(feats("test", "shipped")))
d = P["test"]
for q, (a, bb), r in zip(d["qs"], d["runs"], d["rows"]):
    m = set(q.matches)
    tops = {
        n: r[int(np.argmax(v[a:bb]))]
        for n, v in (("stack", st), ("gbdt", d["base"]), ("ce", d["ce"]))
    }
    if all(t.id in m for t in tops.values()):
        continue
    pos = [c for c in r if c.id in m]
    print(
        "Q",
        q.product.title,
        "| price",
        q.product.fields.get("price"),
        {n: int(t.id in m) for n, t in tops.items()},
    )
    for n, t in tops.items():
        if t.id not in m:
            print("   ", n, "TOP:", t.product.title, t.product.fields.get("price"))
    print("    POS:", [(c.product.title, c.product.fields.get("price")) for c in pos])
