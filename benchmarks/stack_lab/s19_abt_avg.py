# ruff: noqa
# Lab record of session 19: kept as run, /tmp paths as used then.
"""Averaged cross-encoder weights on Abt-Buy (hybrid caches of session 18).

`s19_abt_avg.py RUN OUT`: RUN's kept folder (RUN/cross-encoder) and its last checkpoint
averaged into OUT, then each of kept / last / averaged scores the cached valid (K=20, as
the trainer ranks it) and test (K=100) candidates alone (stage1_weight=0): hit@1."""

import pickle, shutil, sys
from pathlib import Path

sys.path.insert(0, "/work/main")
from safetensors.torch import load_file, save_file
from rerank.base import build_reranker

run, out = Path(sys.argv[1]), Path(sys.argv[2])
kept = run / "cross-encoder"
last = sorted((kept / "checkpoints").glob("checkpoint-*"))[-1]
if not out.exists():
    shutil.copytree(kept, out, ignore=shutil.ignore_patterns("checkpoints"))
    a, b = load_file(kept / "model.safetensors"), load_file(last / "model.safetensors")
    save_file(
        {k: (a[k].float() + b[k].float()).div(2).to(a[k].dtype) for k in a},
        out / "model.safetensors",
        metadata={"format": "pt"},
    )
KS = {"valid": 20, "test": 100}
WHICH = sys.argv[3].split(",") if len(sys.argv) > 3 else ["kept", "last", "avg"]
for name, folder in (("kept", kept), ("last", last), ("avg", out)):
    if name not in WHICH:
        continue
    if name == "last" and not (folder / "search_reranker.json").exists():
        shutil.copy(kept / "search_reranker.json", folder)
    r = build_reranker(f"cross-encoder:{folder},batch_size=64,stage1_weight=0")
    for s, k in KS.items():
        qs, rows = pickle.load(open(f"/tmp/s18/abt.{s}", "rb"))
        rows = [x[:k] for x in rows]
        pairs = [(q.product, c) for q, row in zip(qs, rows) for c in row]
        sc = r.score(pairs)
        i, hits, n, rr = 0, 0, 0, 0.0
        for q, row in zip(qs, rows):
            s_ = sc[i : i + len(row)]
            i += len(row)
            if not set(q.matches) & {c.id for c in row}:
                n += 1
                continue
            order = sorted(range(len(row)), key=lambda j: -s_[j])
            hits += row[order[0]].id in q.matches
            n += 1
            rr += next((1 / (r + 1) for r, j in enumerate(order[:10]) if row[j].id in q.matches), 0)
        print(name, s, f"hit@1 {hits / n:.3f} MRR@10 {rr / n:.3f}", flush=True)
