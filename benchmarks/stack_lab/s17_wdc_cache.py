# ruff: noqa
# Lab record of session 17 (README, Measured): kept as run, /tmp paths as used then.
import logging, pickle, sys, time

sys.path.insert(0, "/work/main")
from pathlib import Path
from search.config import load_config
from search.train.candidates import open_for_training, stage1_splits

logging.basicConfig(level=logging.WARNING)
home, data = Path(sys.argv[1]), sys.argv[2]
t0 = time.time()
cfg = load_config(None, store={"data_dir": home})
dataset, name = open_for_training(cfg, data, None, None)
for s, k in (("test", 20), ("valid", 50), ("train", 50)):
    _, ((qs, rows),) = stage1_splits(cfg, dataset, name, k, [s])
    Path(f"/tmp/s17/wdc.{s}").write_bytes(pickle.dumps((qs, rows)))
    print(s, len(qs), round(time.time() - t0), flush=True)
