"""The step time of each ``--fine-tune text`` loss on a real catalogue, measured the way
``search eval --fine-tune text`` measures it (``training.text_catalogue.StepClock``: the
mean of steps 2-4 of each run), so the docs can state what ``--fine-tune-loss best`` costs.

It runs ``fit_catalogue_text`` with ``loss = "best"`` and a few steps only (no valid
evaluation falls inside them: ``eval_steps`` is past the end), on the catalogue's own
train split and the packaged MiniLM, and prints one JSON line::

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/fine_tune_steps.py \\
        ../shared/data/wdc-products/catalog.jsonl --steps 8

``--schedule`` runs the fine-tuning phase of ``search eval --fine-tune text`` as it is
(its default schedule: evaluated every 100 steps on the whole valid split, patience 1, at
most 500 steps, both losses) and adds each loss's valid curve and the winner.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("catalogue")
    parser.add_argument("--steps", type=int, default=8, help="steps of each loss (>= 5)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--valid", type=int, default=200, help="valid listings scored")
    parser.add_argument("--schedule", action="store_true", help="the whole default schedule")
    opts = parser.parse_args()

    from retrieval.data import open_dataset
    from retrieval.encoders.text import resolve_model
    from training.text_catalogue import TextFitArgs, fit_catalogue_text

    dataset = open_dataset(opts.catalogue)
    products = list(dataset.products())
    queries = [q for q in dataset.queries("train") if q.matches]
    valid = [p for p in products if p.fields.get("split") == "valid"]
    valid = valid if opts.schedule else valid[: opts.valid]
    timed: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        args = TextFitArgs(model=resolve_model(None), out=Path(tmp), batch_size=opts.batch_size)
        if not opts.schedule:  # no evaluation inside the timed steps
            args.eval_steps, args.max_steps, args.patience = opts.steps + 1, opts.steps, 0
        fit = fit_catalogue_text(
            queries,
            {p.id: p for p in products},
            valid,
            args,
            announce=lambda loss, _left, per_step, _later: timed.__setitem__(loss, per_step),
        )
    load = os.getloadavg()[0]
    curves = {
        loss: {
            "best_step": c["best_step"],
            "best_f1": round(c["best_f1"], 4),
            "f1_by_step": {e["step"]: round(e["eval_valid_match_f1"], 4) for e in c["evals"]},
            "minutes": round(c["seconds"] / 60, 1),
        }
        for loss, c in fit.curves.items()
    }
    print(
        json.dumps(
            {
                "catalogue": opts.catalogue,
                **(
                    {"zero_shot_f1": round(fit.zero_shot_f1, 4), "won": fit.loss}
                    if opts.schedule
                    else {}
                ),
                **({"curves": curves} if opts.schedule else {}),
                "batch_size": opts.batch_size,
                "s_per_step": {k: round(v, 3) for k, v in timed.items()},
                "arcface_over_mnrl": round(timed["arcface"] / timed["mnrl"], 3),
                "threads": os.environ.get("OMP_NUM_THREADS"),
                "load_1min": round(load, 2),
                "machine": platform.processor() or platform.machine(),
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
