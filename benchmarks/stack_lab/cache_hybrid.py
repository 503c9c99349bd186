# ruff: noqa
# Lab record of the stacking study (README, Measured): kept as run, paths as used then.
"""Hybrid stage-1 candidates, CE scores reused from the text cache where the pair was scored."""

import logging
import pickle
import sys
import time

sys.path.insert(0, "/work/wt/s12")
from pathlib import Path

from rerank.base import build_reranker
from search.config import load_config
from search.train.candidates import open_for_training, stage1_splits

logging.basicConfig(level=logging.WARNING)
home = Path("/tmp/s12/home")
ce = "/tmp/s12/home/cross-encoder"
known = {}
for s in ("train", "valid", "test"):
    qs, rows = pickle.loads(open(f"/tmp/s12/lab/abt_text.{s}", "rb").read())
    for q, r in zip(qs, rows):
        for c in r:
            known[(q.id, c.id)] = c.features["ce"]
cfg = load_config(None, store={"data_dir": home}, stage1={"vector": None})
dataset, name = open_for_training(cfg, "/work/shared/data/abt-buy", None, None)
_, splits = stage1_splits(cfg, dataset, name, 100, ["valid", "test", "train"])
r = build_reranker(f"cross-encoder:{ce}")
for sname, (qs, rows) in zip(["valid", "test", "train"], splits):
    rows = [row[: 100 if sname == "test" else 50] for row in rows]
    todo = [(q.product, c) for q, row in zip(qs, rows) for c in row if (q.id, c.id) not in known]
    t = time.time()
    sc = r.score(todo)
    for (qp, c), v in zip(todo, sc):
        known[(qp.id, c.id)] = v
    for q, row in zip(qs, rows):
        for c in row:
            c.features["ce"] = known[(q.id, c.id)]
    print(sname, len(qs), "new pairs", len(todo), time.time() - t, flush=True)
    Path(f"/tmp/s12/lab/abt_hybrid.{sname}").write_bytes(pickle.dumps((qs, rows)))
