# ruff: noqa
# Lab record (issue 12): steps/s of the cross-encoder trainer; `steps.py MINED.jsonl STEPS precision=auto|fp32`.
"""Steps/s of the cross-encoder trainer on abt-buy mined rows (lab only).
usage: steps.py MINED.jsonl STEPS key=value..."""

import sys, json, time, os, logging

sys.path.insert(0, "/work/wt/s12")
import torch
from retrieval.encoders.text import packaged_minilm
import training.cross_encoder as tce
from training.cross_encoder import train_cross_encoder

_ca = tce.common_arguments


def _patched(*a, **k):
    d = _ca(*a, **k)
    if os.environ.get("USE_CPU"):
        d["use_cpu"] = True
    return d


tce.common_arguments = _patched
from training.reranker_config import CrossEncoderConfig

rows = [json.loads(l) for l in open(sys.argv[1])]
steps = int(sys.argv[2])
kw = {}
for a in sys.argv[3:]:
    k, v = a.split("=")
    kw[k] = (
        type(
            getattr(CrossEncoderConfig(), k)
            if getattr(CrossEncoderConfig(), k) is not None
            else 0.0
        )(v)
        if k != "precision"
        else v
    )
cfg = CrossEncoderConfig(max_steps=steps, save_steps=10**6, **kw)
t0 = time.perf_counter()
l0 = os.getloadavg()
s = train_cross_encoder(rows, packaged_minilm(), "/tmp/s12/lab/steps_out", cfg)
dt = time.perf_counter() - t0
print(
    json.dumps(
        {
            "args": sys.argv[3:],
            "threads": torch.get_num_threads(),
            "steps": s["global_step"],
            "seconds": round(dt, 1),
            "steps_per_s": round(s["global_step"] / dt, 3),
            "load_before": l0,
            "load_after": os.getloadavg(),
            "loss_last": s["losses"][-1],
        }
    ),
    flush=True,
)
