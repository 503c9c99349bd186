# ruff: noqa
# Lab record of session 15 (README, Measured): kept as run, paths as used then.
"""Lab: pair-gbdt with description-aware features; stack with ce2 on top."""

import pickle, sys, re
import numpy as np

sys.path.insert(0, "/work/wt/s13")
import rerank.pair_features as pf
import rerank.pair_gbdt as pg
from rerank.blend import Blend, blend_inputs
from training.pair_gbdt import GbdtParams, fit_pair_gbdt, label_candidates

MODE = sys.argv[1]


def desc(p):
    return str(p.fields.get("description") or "")


orig = pf.pair_features


def pair_features(query, cand):
    f = orig(query, cand)
    if MODE == "none":
        return f
    qt, ct = query.title or "", cand.product.title or ""
    qd, cd = desc(query), desc(cand.product)
    qc, cc = pf.model_codes(qt), pf.model_codes(ct)
    f["desc_code_hit"] = (
        (sum(c in pf.squash(ct + " " + cd) for c in qc) / len(qc)) if qc else np.nan
    )
    f["desc_code_hit_rev"] = (
        (sum(c in pf.squash(qt + " " + qd) for c in cc) / len(cc)) if cc else np.nan
    )
    if MODE == "more":
        f["desc_jaccard"] = (
            pf.jaccard(pf.words(qt + " " + qd), pf.words(ct + " " + cd)) if (qd or cd) else np.nan
        )
        s, c = pf.unit_agreement(qt + " " + qd, ct + " " + cd)
        f["desc_unit_shared"], f["desc_unit_conflict"] = s, c
    return f


pf.pair_features = pair_features
pg.pair_features = pair_features
import training.pair_gbdt as tpg

extra = {
    "none": (),
    "codes": ("desc_code_hit", "desc_code_hit_rev"),
    "more": (
        "desc_code_hit",
        "desc_code_hit_rev",
        "desc_jaccard",
        "desc_unit_shared",
        "desc_unit_conflict",
    ),
}[MODE]
tpg.FEATURES = tuple(pf.FEATURES) + extra
TR = pickle.loads(open("/tmp/s12/lab/abt_text.train", "rb").read())
D = {s: pickle.loads(open(f"/tmp/s13/abt_join.{s}", "rb").read()) for s in ("valid", "test")}


def ex(d, k):
    qs, rows = d
    return [(q.product, r[:k], label_candidates(q.matches, r[:k])) for q, r in zip(qs, rows)]


model = fit_pair_gbdt(ex(TR, 50), ex(D["valid"], 50), GbdtParams(), {})
print("features", [f for f in model.features if f.startswith("desc")])
P = {}
for s, d in D.items():
    qs, rows = d
    pairs = [(q.product, c) for q, r in zip(qs, rows) for c in r]
    base = np.array(model.predict(pg.feature_rows(pairs)))
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
        if r:
            tot += (r[int(np.argmax(scores[a:b]))].id in set(q.matches)) / len(q.matches)
    return round(tot / len(d["qs"]), 4)


b = Blend.fit(
    blend_inputs(P["valid"]["base"], [P["valid"]["ce"]], P["valid"]["runs"], [False]),
    P["valid"]["y"],
)
st = np.array(
    b.predict(blend_inputs(P["test"]["base"], [P["test"]["ce"]], P["test"]["runs"], [False]))
)
print(
    MODE,
    "pair-gbdt valid",
    r1("valid", P["valid"]["base"]),
    "test",
    r1("test", P["test"]["base"]),
    "| stack test",
    r1("test", st),
    "| ce test",
    r1("test", P["test"]["ce"]),
)
