# ruff: noqa
# Lab record of session 18: kept as run, /tmp paths as used then.
"""Hard negatives (top 7 non-matches of other groups) of the cached wdc-products train
candidates (s17_wdc_cache.py) whose title reads like the query's or a positive's."""

import pickle, sys, re

sys.path.insert(0, "/work/main")
from rerank.base import text_form

qs, rows = pickle.loads(open("/tmp/s17/wdc.train", "rb").read())
prod = {c.id: c.product for r in rows for c in r}


def norm(t):
    return " ".join(text_form(t, "codes").lower().split())


nq = nneg = ident_q = ident_p = 0
rows_with = 0
pos_ident_q = 0
npos = 0
for q, r in zip(qs, rows):
    m = set(q.matches)
    if not m:
        continue
    nq += 1
    qt = norm(q.product.title)
    pt = {norm(prod[i].title) for i in m if i in prod}
    negs = [c for c in r if c.id not in m and c.id != q.id and c.product.group != q.product.group][
        :7
    ]
    hit = False
    for c in negs:
        nneg += 1
        t = norm(c.product.title)
        if t == qt:
            ident_q += 1
            hit = True
        elif t in pt:
            ident_p += 1
            hit = True
    rows_with += hit
    for i in m:
        if i in prod:
            npos += 1
            pos_ident_q += norm(prod[i].title) == qt
print(
    "queries",
    nq,
    "negs",
    nneg,
    "neg==query",
    ident_q,
    "neg==a positive",
    ident_p,
    "rows with any",
    rows_with,
    "pos==query",
    pos_ident_q,
    "of",
    npos,
)
