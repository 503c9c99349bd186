# ruff: noqa
# Lab record of session 18 (README, Measured): kept as run, /tmp paths as used then.
"""wdc-products valid sample (s16_wdc_cache.py, session 15's cross-encoder as column ce): the
CE score and rank of matches titled like the query vs other matches, then a sample of
queries stage 1 gets right and the CE does not (its pick and its stage-1 rank)."""

import pickle, sys, numpy as np

sys.path.insert(0, "/work/main")
from rerank.base import text_form

qs, rows = pickle.loads(open("/tmp/s16/wdc.valid", "rb").read())


def norm(t):
    return " ".join(text_form(t, "codes").lower().split())


a = {"ident_pos": [], "ident_neg": [], "other_pos": [], "other_neg": []}
ranks = {"ident": [], "other": []}
for q, r in zip(qs, rows):
    m = set(q.matches)
    if not m:
        continue
    sc = np.array([c.features["ce"] for c in r])
    order = np.argsort(-sc)
    rk = {r[j].id: i + 1 for i, j in enumerate(order)}
    for c in r:
        k = ("ident" if norm(c.product.title) == norm(q.product.title) else "other") + (
            "_pos" if c.id in m else "_neg"
        )
        a[k].append(c.features["ce"])
        if c.id in m:
            ranks[k.split("_")[0]].append(rk[c.id])
for k, v in a.items():
    print(k, len(v), round(float(np.mean(v)), 3) if v else None)
for k, v in ranks.items():
    print("pos CE rank", k, len(v), np.mean(v), np.mean(np.array(v) == 1))

# --- the sample of queries (wdc_look.py as run) ---
qs, rows = pickle.loads(open("/tmp/s16/wdc.valid", "rb").read())
n = ce_ok = s1_ok = 0
ex = []
from collections import Counter

for q, r in zip(qs, rows):
    m = set(q.matches)
    if not m or not r:
        continue
    n += 1
    sc = [c.features["ce"] for c in r]
    top = r[int(np.argmax(sc))]
    a = top.id in m
    b = r[0].id in m
    ce_ok += a
    s1_ok += b
    if b and not a:
        ex.append((q, r, top))
print(n, ce_ok / n, s1_ok / n, len(ex))
import random

random.seed(1)
for q, r, top in random.sample(ex, 12):
    print("Q :", q.product.title[:110])
    print(" S1:", r[0].product.title[:110])
    print(
        " CE:",
        top.product.title[:110],
        "|",
        top.product.title == q.product.title,
        "| CE rank-1 s1rank",
        top.stage1_rank,
    )
