# ruff: noqa
# Lab record of the stacking study (README, Measured): kept as run, paths as used then.
"""Cache stage-1 candidates (with features) and CE scores for train/valid/test (lab only)."""

import logging
import os
import pickle
import sys
import time

sys.path.insert(0, "/work/wt/s12")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from pathlib import Path

from rerank.base import build_reranker
from search.config import load_config
from search.train.candidates import open_for_training, stage1_splits

home = Path(sys.argv[1])
data = sys.argv[2]
vector = sys.argv[3]
ce = sys.argv[4]
out = Path(sys.argv[5])
logging.basicConfig(level=logging.WARNING)
cfg = load_config(
    None, store={"data_dir": home}, stage1={"vector": None if vector == "hybrid" else vector}
)
dataset, name = open_for_training(cfg, data, None, None)
t = time.time()
_, splits = stage1_splits(cfg, dataset, name, 100, ["valid", "test", "train"])
print("stage1", time.time() - t, flush=True)
r = build_reranker(f"cross-encoder:{ce}")
res = {}
for sname, (qs, rows) in zip(["valid", "test", "train"], splits):
    t = time.time()
    rows = [r[: 100 if sname == "test" else 50] for r in rows]
    pairs = [(q.product, c) for q, row in zip(qs, rows) for c in row]
    scores = r.score(pairs)
    i = 0
    for row in rows:
        for c in row:
            c.features["ce"] = float(scores[i])
            i += 1
    res[sname] = (qs, rows)
    print(sname, len(qs), len(pairs), time.time() - t, flush=True)
    out.with_suffix("." + sname).write_bytes(pickle.dumps((qs, rows)))
out.write_bytes(pickle.dumps(res))
