"""The valid curve of ``search eval --fine-tune text``'s in-batch-negatives run under another
evaluation schedule than the default (every 100 steps, patience 1): what a finer schedule
would choose. Runs ``training.text_catalogue.fit_catalogue_text`` as the recipe does (the
catalogue's train groups, the packaged MiniLM, lr 5e-5, cosine over ``--max-steps``), scored
on the whole valid split every ``--eval-steps`` steps, stopped after ``--patience``
evaluations without a gain; prints one JSON line (the curve, the step kept, the time)::

    OMP_NUM_THREADS=2 nice -n 5 .venv/bin/python benchmarks/fine_tune_schedule.py \\
        ../shared/data/wdc-products/catalog.jsonl --eval-steps 25 --patience 4 --out runs/sched25

The kept step's model is saved in ``OUT/mnrl`` (``benchmarks/fine_tune_held_out.py --swap``
scores the pair model on it).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("catalogue")
    parser.add_argument("--eval-steps", type=int, default=25)
    parser.add_argument("--patience", type=int, default=4)
    parser.add_argument("--max-steps", type=int, default=500)
    parser.add_argument("--loss", default="mnrl", choices=["mnrl", "arcface"])
    parser.add_argument("--out", required=True)
    opts = parser.parse_args()

    from retrieval.data import open_dataset
    from retrieval.encoders.text import resolve_model
    from training.text_catalogue import TextFitArgs, fit_catalogue_text

    dataset = open_dataset(opts.catalogue)
    products = list(dataset.products())
    queries = [q for q in dataset.queries("train") if q.matches]
    valid = [p for p in products if p.fields.get("split") == "valid"]
    args = TextFitArgs(
        model=resolve_model(None),
        out=Path(opts.out),
        eval_steps=opts.eval_steps,
        patience=opts.patience,
        max_steps=opts.max_steps,
        loss=opts.loss,
    )
    start = time.perf_counter()
    fit = fit_catalogue_text(queries, {p.id: p for p in products}, valid, args)
    curve = [(e["step"], round(e["eval_valid_match_f1"], 4)) for e in fit.evals]
    print(json.dumps({"zero_shot": round(fit.zero_shot_f1, 4), "curve": curve,
                      "best_step": fit.best_step, "seconds": round(time.perf_counter() - start)}))  # fmt: skip


if __name__ == "__main__":
    main()
