"""Training speed of the cross-encoder trainer: steps/s by thread count and precision.

Trains the packaged all-MiniLM-L6-v2 (a fresh one-logit head, the `fresh-head` recipe)
for ``--steps`` steps on mined rows (``search mine`` output, FlagEmbedding layout) with
the trainer's defaults (groups of 8 pairs, 4 groups a step) and reports steps/s, the
torch thread count and the load average before and after. Run it once per setting you
compare, one after the other on the same machine: ``--precision auto`` is bf16 autocast
where the CPU has native bf16 (AVX512-BF16/AMX), ``fp32`` turns that off; the thread
count follows ``OMP_NUM_THREADS``. No valid split, no epoch choice: steps only (the time
includes loading the model, about a second).

    search mine ../shared/data/abt-buy -e text --out runs/abt-mined.jsonl
    OMP_NUM_THREADS=1 python benchmarks/ce_train_steps.py runs/abt-mined.jsonl
    OMP_NUM_THREADS=1 python benchmarks/ce_train_steps.py runs/abt-mined.jsonl --precision fp32
    OMP_NUM_THREADS=2 python benchmarks/ce_train_steps.py runs/abt-mined.jsonl --steps 50

Measured, not asserted; on a shared machine other jobs move the figure, so the load
average is part of the result.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from benchmarks.bench_report import load_average, machine_info  # noqa: E402
from retrieval.atomic import write_json  # noqa: E402
from retrieval.device import PRECISIONS  # noqa: E402
from retrieval.encoders.text import packaged_minilm  # noqa: E402
from training.cross_encoder import train_cross_encoder  # noqa: E402
from training.reranker_config import CrossEncoderConfig  # noqa: E402

log = logging.getLogger("ce_train_steps")


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Mined rows, one JSON object a line (``query``, ``pos``, ``neg``)."""
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def measure(rows: list[dict[str, Any]], steps: int, precision: str, out: Path) -> dict[str, Any]:
    """Train ``steps`` steps into ``out`` and time them."""
    import torch

    config = CrossEncoderConfig(max_steps=steps, save_steps=10**6, precision=precision)
    load_before = load_average()
    start = time.perf_counter()
    summary = train_cross_encoder(rows, packaged_minilm(), out, config)
    seconds = time.perf_counter() - start
    done = summary["global_step"]
    return {
        "precision": precision,
        "threads": torch.get_num_threads(),
        "steps": done,
        "seconds": round(seconds, 1),
        "steps_per_s": round(done / seconds, 3),
        "load_before": load_before,
        "load_after": load_average(),
        "loss_last": summary["losses"][-1] if summary["losses"] else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mined", type=Path, help="mined rows (search mine --out)")
    parser.add_argument("--steps", type=int, default=25, help="training steps to time")
    parser.add_argument(
        "--precision", default="auto", choices=PRECISIONS, help="auto: CPU bf16 where native"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the result JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = read_rows(args.mined)
    with tempfile.TemporaryDirectory(prefix="ce-steps-") as tmp:
        result = measure(rows, args.steps, args.precision, Path(tmp) / "model")
    report = {"machine": machine_info(), "mined": str(args.mined), "result": result}
    print(json.dumps(result))
    if args.out:
        write_json(args.out, report)


if __name__ == "__main__":
    main()
