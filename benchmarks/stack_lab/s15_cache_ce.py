# ruff: noqa
# Lab record of session 15 (README, Measured): kept as run, paths as used then.
"""Lab: score the cached valid/test candidates with a cross-encoder (column ce2)."""

import pickle, sys, time

sys.path.insert(0, "/work/wt/s13")
from rerank.base import build_reranker

ce, tag = sys.argv[1], sys.argv[2]
r = build_reranker(f"cross-encoder:{ce}")
print("form", r.format.form)
for s, k in (("valid", 50), ("test", 100), ("train", 50)):
    if s == "train" and len(sys.argv) < 4:
        continue
    qs, rows = pickle.loads(open(f"/tmp/s12/lab/abt_text.{s}", "rb").read())
    rows = [x[:k] for x in rows]
    pairs = [(q.product, c) for q, row in zip(qs, rows) for c in row]
    t = time.time()
    sc = r.score(pairs)
    i = 0
    for row in rows:
        for c in row:
            c.features["ce2"] = float(sc[i])
            i += 1
    open(f"/tmp/s13/abt_{tag}.{s}", "wb").write(pickle.dumps((qs, rows)))
    print(s, len(pairs), round(time.time() - t), flush=True)
