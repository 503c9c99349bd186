# ruff: noqa
# Lab record of session 16 (README, Measured): kept as run, /tmp paths as used then.
import pickle, sys, time

sys.path.insert(0, "/work/main")
from rerank.base import build_reranker

ce, src, dst, col = sys.argv[1:5]
r = build_reranker(f"cross-encoder:{ce},batch_size=64")
for s, k in (("valid", 50), ("test", 100)):
    qs, rows = pickle.loads(open(src.format(s=s), "rb").read())
    rows = [x[:k] for x in rows]
    pairs = [(q.product, c) for q, row in zip(qs, rows) for c in row]
    t = time.time()
    sc = r.score(pairs)
    i = 0
    for row in rows:
        for c in row:
            c.features[col] = float(sc[i])
            i += 1
    open(dst.format(s=s), "wb").write(pickle.dumps((qs, rows)))
    print(s, len(pairs), round(time.time() - t), flush=True)
