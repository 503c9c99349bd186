# ruff: noqa
# Lab record of session 16 (README, Measured): kept as run, /tmp paths as used then.
import pickle, sys
import numpy as np

sys.path.insert(0, "/work/main")
from rerank.blend import logit

D = {s: pickle.loads(open(f"/tmp/s16/hyb_both.{s}", "rb").read()) for s in ("valid", "test")}


def L(c, col):
    return float(logit(np.array([c.features[col]]))[0])


def r1(qs, rows, score, k):
    tot = 0
    hit = 0
    for q, r in zip(qs, rows):
        r = r[:k]
        m = set(q.matches)
        if not m or not r:
            continue
        top = r[int(np.argmax([score(c) for c in r]))].id
        tot += (top in m) / len(m)
        hit += top in m
    n = sum(1 for q in qs if q.matches)
    return round(tot / n, 4), round(hit / n, 4)


for s, k in (("valid", 50), ("test", 100)):
    qs, rows = D[s]
    print(
        s,
        "cej",
        r1(qs, rows, lambda c: L(c, "cej"), k),
        "ceh",
        r1(qs, rows, lambda c: L(c, "ceh"), k),
        "avg",
        r1(qs, rows, lambda c: L(c, "cej") + L(c, "ceh"), k),
    )
