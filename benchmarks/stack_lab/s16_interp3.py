# ruff: noqa
# Lab record of session 16 (README, Measured): kept as run, /tmp paths as used then.
import pickle, sys
import numpy as np

sys.path.insert(0, "/work/main")
from rerank.blend import logit


def r1(qs, rows, score, k):
    tot = hit = mrr = 0
    for q, r in zip(qs, rows):
        r = r[:k]
        m = set(q.matches) - {q.id}
        if not m or not r:
            continue
        sc = np.array([score(c) for c in r])
        order = np.argsort(-sc, kind="stable")
        top = r[order[0]].id
        tot += (top in m) / len(m)
        hit += top in m
        for i, j in enumerate(order[:10]):
            if r[j].id in m:
                mrr += 1 / (i + 1)
                break
    n = sum(1 for q in qs if set(q.matches) - {q.id})
    return "R1 %.3f hit %.3f mrr %.3f" % (tot / n, hit / n, mrr / n)


for path, col, kt in (
    ("/tmp/s13/abt_join.{s}", "ce2", 100),
    ("/tmp/s16/hyb_both.{s}", "cej", 100),
    ("/tmp/s16/hyb_both.{s}", "ceh", 100),
    ("/tmp/s16/wdc.{s}", "ce", 20),
):
    print(path, col)
    D = {s: pickle.loads(open(path.format(s=s), "rb").read()) for s in ("valid", "test")}
    for w in (0, 0.25, 0.5, 1, 2, 4):
        f = lambda c: float(logit(np.array([c.features[col]]))[0]) - w * np.log2(1 + c.stage1_rank)
        print("  w", w, "valid@20", r1(*D["valid"], f, 20), "| test", r1(*D["test"], f, kt))
