# ruff: noqa
# Lab record of session 16 (README, Measured): kept as run, /tmp paths as used then.
import logging, pickle, sys, time

sys.path.insert(0, "/work/main")
from pathlib import Path
from rerank.base import build_reranker
from search.config import load_config
from search.train.candidates import open_for_training, stage1_splits
from training.ranking import sample_indices

logging.basicConfig(level=logging.WARNING)
home, data, ce = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
t0 = time.time()
cfg = load_config(None, store={"data_dir": home})
dataset, name = open_for_training(cfg, data, None, None)
_, ((vq, vrows),) = stage1_splits(cfg, dataset, name, 20, ["valid"])
keep = sample_indices(len(vq), 500)
vq, vrows = [vq[i] for i in keep], [vrows[i] for i in keep]
_, ((tq, trows),) = stage1_splits(cfg, dataset, name, 20, ["test"])
print("stage1", round(time.time() - t0), flush=True)
r = build_reranker(f"cross-encoder:{ce},batch_size=64")
for s, qs, rows in (("valid", vq, vrows), ("test", tq, trows)):
    pairs = [(q.product, c) for q, row in zip(qs, rows) for c in row]
    sc = r.score(pairs)
    i = 0
    for row in rows:
        for c in row:
            c.features["ce"] = float(sc[i])
            i += 1
    Path(f"/tmp/s16/wdc.{s}").write_bytes(pickle.dumps((qs, rows)))
    print(s, len(pairs), round(time.time() - t0), flush=True)
