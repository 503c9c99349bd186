"""An image encoder fine-tuned on a catalogue's train groups: the step count chosen on
valid.

What ``search eval --fine-tune image`` runs: the project's timm ArcFace trainer
(``training.timm``) from the zero-shot timm encoder, each train photo a sample of its
group, group-balanced batches (``per_group`` photos of a group each), the first ``freeze``
of the backbone's tensors kept fixed, a fresh BN-dropout-FC neck of ``neck`` dims on top
(0: none, the embedding is the backbone's pooled vector);
every ``eval_steps`` steps the model is scored by the match F1 of its image cosine on the
valid split (every valid photo against the rest of valid, the best threshold of a sweep:
``training.embed_eval.best_threshold_f1``, what the text path scores titles with), its best
step kept, the run stopped once ``patience`` scores in a row bring no gain. The zero-shot
model is scored first, so a run that never beats it says so (and the caller keeps the
zero-shot encoder). Before any of it every train and valid photo is opened and decoded once
(``check_photos``, with the reader training and indexing use, behind a progress bar); those
that do not read are left out of training and of the valid scoring, counted in one warning
line and in ``skipped_photos``. A train split with fewer groups than a batch holds (those
left out included), or a valid split with under two grouped photos, trains nothing and says
why. The valid and test listings are never trained on. Loss runs, the estimate, the bar and resume: ``training.catalogue_fit``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.types import Product, ProgressFactory
from training import catalogue_fit as fit
from training.embed_eval import best_threshold_f1

log = logging.getLogger(__name__)
LOSS = "arcface"
LISTED = 5  # unreadable photos named in fine-tune.json (3 in the warning line)


@dataclass
class ImageFitArgs(fit.FitSchedule):
    """The fine-tuning of ``search eval --fine-tune image`` (``image_*`` keys of
    ``[fine_tune]``); ``model`` is a timm encoder spec (``efficientnet_lite0,pretrained=
    PATH,key_map=order``) or a trained folder."""

    freeze: float = 0.75  # fraction of the backbone's tensors kept fixed
    image_size: int | None = None
    margin: float = 0.3
    per_group: int = 4
    num_workers: int = 1  # image decoding processes while training
    neck: int = 0  # dims of a fresh BN-dropout-FC neck (0: none, the pooled vector)

    def trainer_options(self) -> dict[str, Any]:
        """This run's settings beyond the schedule, by the names ``training.timm``'s
        ``TimmArcFaceArgs`` gives them."""
        schedule = {f.name for f in fields(fit.FitSchedule)}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in schedule}


def match_f1(products: Sequence[Product], vectors: np.ndarray) -> dict[str, float]:
    """The valid match F1 of the image cosine at its best threshold (and that threshold)."""
    f1, threshold = best_threshold_f1(vectors, [str(p.group) for p in products])
    return {"valid_match_f1": f1, "valid_match_threshold": threshold}


def too_small(train: Sequence[Product], valid: Sequence[Product], args: ImageFitArgs) -> str:
    """Why these splits cannot be fine-tuned on ("" when they can)."""
    groups = len({p.group for p in train if p.group is not None and p.image_path})
    need = max(2, args.batch_size // args.per_group)
    if groups < need:
        return (
            f"the train split has {groups} match groups with images, fewer than a batch of "
            f"{args.batch_size} holds ({need} groups of {args.per_group} photos)"
        )
    scored = [p for p in valid if p.group is not None and p.image_path]
    if len(scored) < 2:
        return f"the valid split has {len(scored)} grouped listings with images: no step to choose"
    return ""


def check_photos(products: Sequence[Product], progress: ProgressFactory | None = None) -> dict:
    """Each distinct photo of ``products`` opened and decoded once by
    ``retrieval.data.images.load_image`` (what training and indexing read with), in threads
    (PIL decodes outside the GIL); the photos that do not read, path -> reason."""
    from concurrent.futures import ThreadPoolExecutor

    from retrieval.data import images

    paths = list(dict.fromkeys(str(p.image_path) for p in products if p.image_path))
    tick = progress(f"checking {len(paths):,} photos", len(paths)) if progress and paths else None

    def reason(path: str) -> str:
        try:
            images.load_image(path)
        except OSError as exc:
            return str(exc)
        return ""

    bad: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        for path, why in zip(paths, pool.map(reason, paths)):
            if why:
                bad[path] = why
            if tick is not None:
                tick(1)
    return bad


def leave_out(
    train: Sequence[Product], valid: Sequence[Product], bad: dict[str, str]
) -> tuple[list[Product], list[Product], dict]:
    """The splits without the listings whose photo is in ``bad``, and what was left out
    (``skipped_photos``: count, listings, the first few paths and why), said in one line."""
    kept = [[p for p in split if not p.image_path or str(p.image_path) not in bad]
            for split in (train, valid)]  # fmt: skip
    if not bad:
        return kept[0], kept[1], {}
    listings = len(train) + len(valid) - len(kept[0]) - len(kept[1])
    first = dict(list(bad.items())[:LISTED])
    photos = len({str(p.image_path) for p in (*train, *valid) if p.image_path})
    more = f"; {len(bad) - 3} more in fine-tune.json" if len(bad) > 3 else ""
    log.warning(
        "fine-tune image: %d of %d train and valid photos do not read, left out of training "
        "and of the valid scoring (%d listings): %s%s",
        len(bad), photos, listings, "; ".join(list(bad.values())[:3]), more,
    )  # fmt: skip
    return kept[0], kept[1], {"count": len(bad), "listings": listings, "first": first}


def fit_catalogue_image(
    train: Sequence[Product],
    valid: Sequence[Product],
    args: ImageFitArgs,
    progress: ProgressFactory | None = None,
    announce: fit.Announce | None = None,
) -> fit.CatalogueFit:
    """Fine-tune ``args.model`` with ArcFace on the train listings' groups into
    ``args.out/arcface``; the step is chosen on valid's match F1."""
    from retrieval.device import require_extra

    require_extra("timm", {"torch": "torch", "timm": "timm"})
    from retrieval.encoders.timm_model import transforms
    from training.seeding import seed_everything
    from training.timm import TimmArcFaceArgs, embed_listings, fit_timm_arcface, start_embedder

    train, valid, skipped = leave_out(train, valid, check_photos([*train, *valid], progress))
    why = too_small(train, valid, args)
    if why:
        left = f" ({skipped['count']} unreadable photos left out)" if skipped else ""
        return fit.CatalogueFit.skip(why + left, skipped)
    arc = TimmArcFaceArgs(
        model=args.model,
        **(args.trainer_options() | {"neck": args.neck or None}),
        **fit.arcface_schedule(args, Path(args.out) / LOSS, len(train)),
    )
    seed_everything(args.seed)  # as the trainer seeds before it builds the same start model
    start = start_embedder(replace(arc, neck=None))  # the zero-shot encoder: no fresh neck
    scored = [p for p in valid if p.group is not None and p.image_path]
    zero = match_f1(*embed_listings(start.eval(), scored, transforms(start.config.data)))
    del start
    log.info(
        "zero-shot valid image match F1 %.4f over %d photos", zero["valid_match_f1"], len(scored)
    )

    def run(loss: str, out: Path, clock: fit.StepClock) -> fit.LossRun:
        result, best, _ = fit_timm_arcface(train, valid, arc, score=match_f1, on_step=clock.step)
        return fit.arcface_run(result, best)

    done = fit.fit_losses("image", (LOSS,), args, zero["valid_match_f1"], run, progress, announce)
    done.skipped_photos = skipped
    return done
