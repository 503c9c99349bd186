# ruff: noqa
# Lab record of the stacking study (README, Measured): kept as run, paths as used then.
"""wdc-products: the capped CE, pair-gbdt (trees of the --no-ce run, CLI defaults) and the stack
(blend fitted by training.pair_gbdt.fit_blend on <=500 valid queries, as the trainer does), test K=20."""

import json
import logging
import os
import sys
import time

sys.path.insert(0, "/work/wt/s12")
from dataclasses import replace
from pathlib import Path

from rerank.pair_gbdt import PairGbdtModel, PairGbdtReranker
from rerank.stacking import StoredScores, add_stack_features, build_stack
from search.config import load_config
from search.train.candidates import compare_stages, open_for_training, stage1_splits
from training.pair_gbdt import fit_blend, label_candidates
from training.ranking import sample_indices

logging.basicConfig(level=logging.WARNING)
home, data, ce, gbdt = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
t0 = time.time()
l0 = os.getloadavg()
cfg = load_config(None, store={"data_dir": home})
dataset, name = open_for_training(cfg, data, None, None)
_, ((vq, vrows),) = stage1_splits(cfg, dataset, name, 50, ["valid"])
_, ((tq, trows),) = stage1_splits(cfg, dataset, name, 20, ["test"])
print("stage1", round(time.time() - t0), flush=True)
stack = build_stack([f"cross-encoder:{ce}"])
add_stack_features(stack, [(q.product, r) for q, r in zip(tq, trows)])  # test first
print("test scored", round(time.time() - t0), flush=True)
stored = [replace(s, reranker=StoredScores(s.column)) for s in stack]
out = {}


def measure(label, rr):
    m = compare_stages(rr, tq, trows)
    out.setdefault("stage 1", {k: round(v, 3) for k, v in m.items() if k.startswith("stage1/")})
    out[label] = {k: round(v, 3) for k, v in m.items() if k.startswith("stage2/")}
    res = {"test": out, "test_queries": len(tq), "seconds": round(time.time() - t0)}
    res.update(load_start=l0, load_end=os.getloadavg())
    Path("/tmp/s12/wdc/stack_result.json").write_text(json.dumps(res, indent=1))
    print(label, out[label], flush=True)
    return res


measure("pair-gbdt", PairGbdtReranker(PairGbdtModel.load(gbdt)))
measure("cross-encoder", stored[0].reranker)
keep = sample_indices(len(vq), 500)
bq, brows = [vq[i] for i in keep], [vrows[i] for i in keep]
add_stack_features(stack, [(q.product, r) for q, r in zip(bq, brows)])
print("valid scored", round(time.time() - t0), flush=True)
model = PairGbdtModel.load(gbdt)
model.info["stacked"] = [s.describe() for s in stack]
examples = [(q.product, r, label_candidates(q.matches, r)) for q, r in zip(bq, brows)]
fit_blend(model, [stack[0].column], examples)
res = measure("stack", PairGbdtReranker(model, stacked=stored))
res.update(blend_queries=len(keep), blend=model.info["blend"])
print(json.dumps(res, indent=1))
Path("/tmp/s12/wdc/stack_result.json").write_text(json.dumps(res, indent=1))
