# ruff: noqa
# Lab record of session 17 (README, Measured): kept as run, /tmp paths as used then.
import pickle, sys

sys.path.insert(0, "/work/main")
from rerank.base import rerank_batch
from rerank.pair_gbdt import PairGbdtReranker
from training.pair_gbdt import GbdtParams, fit_pair_gbdt, label_candidates

D = {
    s: pickle.loads(open(f"/tmp/s12/lab/abt_hybrid.{s}", "rb").read())
    for s in ("train", "valid", "test")
}


def ex(s, k):
    qs, rows = D[s]
    return [(q.product, r[:k], label_candidates(q.matches, r[:k])) for q, r in zip(qs, rows)]


model = fit_pair_gbdt(ex("train", 50), ex("valid", 50), GbdtParams(), {})
rr = PairGbdtReranker(model, "plain")
qs, rows = D["test"]
out = rerank_batch(rr, [(q.product, r) for q, r in zip(qs, rows)])


def txt(p):
    return f"{p.title!r}\n        D: {(p.fields.get('description') or '')[:300]!r}"


miss = 0
for q, o in zip(qs, out):
    top = o[0]
    if top.id in set(q.matches):
        continue
    miss += 1
    ranks = [i for i, c in enumerate(o) if c.id in set(q.matches)]
    print("=== Q", txt(q.product), "| pos rank", ranks, "n matches", len(q.matches))
    print("   TOP ", txt(top.product), round(top.score, 3))
    for c in o:
        if c.id in set(q.matches):
            print("   POS ", txt(c.product), round(c.score, 3))
            break
print("misses", miss, len(qs))
