# ruff: noqa
# Lab record of the stacking study (README, Measured): kept as run, paths as used then.
"""The shipped stacking path (fit_pair_gbdt + fit_blend + PairGbdtReranker) on cached CE scores."""

import pickle
import sys

sys.path.insert(0, "/work/wt/s12")
from rerank.base import rerank_batch
from rerank.pair_gbdt import PairGbdtReranker
from rerank.stacking import Stacked
from retrieval.types import queries_to_qrels
from search.train.candidates import ranking_metrics, score_run
from training.pair_gbdt import GbdtParams, fit_blend, fit_pair_gbdt, label_candidates

tag = sys.argv[1]
D = {
    s: pickle.loads(open(f"/tmp/s12/lab/abt_{tag}.{s}", "rb").read())
    for s in ("train", "valid", "test")
}


def ex(s, k):
    qs, rows = D[s]
    return [(q.product, r[:k], label_candidates(q.matches, r[:k])) for q, r in zip(qs, rows)]


class Cached:
    needs_features = False

    def score(self, pairs):
        return [c.features["ce"] for _, c in pairs]


st = Stacked(Cached(), "cached", "cross-encoder", "x", "stack1_cross_encoder")
tr, va = ex("train", 50), ex("valid", 50)
model = fit_pair_gbdt(tr, va, GbdtParams(), {"stacked": [st.describe()]})
for _, cands, _ in va:
    for c in cands:
        c.features["stack1_cross_encoder"] = c.features["ce"]
fit_blend(model, [st.column], va)
print("blend", model.info["blend"]["coef"])
plain = PairGbdtReranker(model.__class__(model.booster, model.features, {}), "plain")
stack = PairGbdtReranker(model, "stack", [st])
for s in ("valid", "test"):
    qs, rows = D[s]
    rows = [r[: 50 if s == "valid" else 100] for r in rows]
    qrels = queries_to_qrels(qs)
    for name, rr in (("pair-gbdt", plain), ("stack", stack)):
        out = rerank_batch(rr, [(q.product, r) for q, r in zip(qs, rows)])
        m = ranking_metrics(score_run(qs, out, 2), qrels, name)
        print(tag, s, {k: round(v, 3) for k, v in m.items()})
