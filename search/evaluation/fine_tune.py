"""``search eval --fine-tune text,image``: the encoders fine-tuned on the catalogue's own
train groups before the collection is indexed and the matcher tuned (the Shopee winners'
recipe, in one command).

Phases, each resumable (``--resume``, the same ``--out``):

1. fine-tune (``training.text_catalogue``): the train split's groups, each loss of
   ``fine_tune.loss`` (in-batch negatives, ArcFace, or ``best``: both, the better on
   valid kept), the step count chosen on valid's match F1; the encoders land in
   ``OUT/fine-tune/text-<time>/<loss>`` with ``fine-tune.json`` written last (a folder
   without it is unfinished: ``--resume`` goes on from its newest complete checkpoint).
   Each loss's measured step time is reported before its run as a ``FineTuneEstimate``
   (``announce``: the CLI prints its line). ``image`` (``training.image_catalogue``): timm
   ArcFace from the zero-shot ``timm`` encoder (or ``fine_tune.image_model``), its step
   chosen on valid's match F1 of the image cosine, into ``OUT/fine-tune/image-<time>``;
2. index: the fine-tuned vectors (``text_ft``, ``image_ft``) beside the zero-shot ones in one
   collection, named by the encoder list (a partial collection is filled, never
   duplicated: point ids are UUIDv5 of the listing);
3. the matcher tuned over every vector, recording the fine-tuned folder and the
   command that rebuilds it (``record``), which ``search match`` checks.

Nothing of the valid or test split is trained on; valid only picks the step. A train
split with too few groups for a batch keeps the zero-shot encoders, with a note.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from retrieval.atomic import write_json
from retrieval.data.base import Dataset
from retrieval.encoders.folders import REBUILD_KEY
from retrieval.errors import UsageError
from retrieval.types import Product, ProgressFactory
from search.config import AppConfig
from search.evaluation.fine_tune_specs import (
    VECTORS,
    base_image,
    base_text,
    rebuild_command,
    spec_of,
)

log = logging.getLogger(__name__)
DONE_FILE = "fine-tune.json"


@dataclass(frozen=True)
class FineTuneEstimate:
    """What a loss's run will cost, measured on its first steps, and what follows it."""

    loss: str
    steps: int  # at most this many more (early stopping ends it sooner)
    step_seconds: float
    later: tuple[str, ...]  # losses (or "image arcface") still to train after this one
    listings: int  # to index afterwards
    encoder: str = "text"  # what this loss fine-tunes: text, image

    def line(self) -> str:
        """The one line the user sees before the run."""
        minutes = self.steps * self.step_seconds / 60
        then = "".join(f", then {loss} (timed when it starts)" for loss in self.later)
        return (
            f"fine-tuning {self.encoder} ({self.loss}): at most {self.steps} steps x "
            f"{self.step_seconds:.2f} s/step (measured) ≈ {minutes:.{1 if minutes < 10 else 0}f} "
            f"min plus evaluations{then}, then indexing ~{self.listings:,} listings, "
            "then tuning"
        )


@dataclass
class FineTuned:
    """The encoder list to index with, the run folder, notes and what was fine-tuned."""

    encoders: list[str]
    folder: Path
    notes: list[str] = field(default_factory=list)
    encoders_info: dict[str, dict[str, Any]] = field(default_factory=dict)  # vector -> info

    def collection_meta(self) -> dict[str, Any]:
        """What the collection records of the fine-tuned folders: the command that rebuilds
        each (``retrieval.encoders.folders``: named by `search query` once one is gone)."""
        rebuild = {info["path"]: info["command"] for info in self.encoders_info.values()}
        return {REBUILD_KEY: rebuild} if rebuild else {}


def fine_tune_phase(
    cfg: AppConfig,
    dataset_path: str,
    fmt: str | None,
    encoders: Sequence[str] | None,
    out: str | Path | None,
    progress: ProgressFactory | None = None,
    announce: Callable[[FineTuneEstimate], None] | None = None,
) -> FineTuned:
    """Fine-tune ``cfg.fine_tune.encoders`` (text first); the encoder list gains their
    specs. ``announce`` is given each loss's estimate before its run."""
    from retrieval.data import open_dataset

    ft = cfg.fine_tune
    if ft.resume and out is None:
        raise UsageError("--resume needs --out: the run folder of the run to go on from")
    dataset = open_dataset(dataset_path, format=fmt)
    products = list(dataset.products())
    check_feedable(dataset_path, products, ft.encoders)
    folder = Path(out) if out is not None else default_folder(dataset.name)
    result = FineTuned(list(encoders or cfg.stage1.encoders), folder)
    kinds = [kind for kind in VECTORS if kind in ft.encoders]
    if "image" in kinds:
        base_image(result.encoders, ft.image_model)  # no start model: say so before training
    zero_shot = list(result.encoders)
    for i, kind in enumerate(kinds):
        then = tuple(f"{k} arcface" for k in kinds[i + 1 :])  # image follows text
        run = _Run(cfg, dataset, dataset_path, products, result, zero_shot, kind, then, fmt)
        spec, info, note = run.phase(progress, announce)
        result.notes.append(note)
        if spec is not None:
            result.encoders.append(spec)
            result.encoders_info[VECTORS[kind]] = info
    return result


def check_feedable(dataset_path: str, products: Sequence[Product], kinds: Sequence[str]) -> None:
    """One line when the catalogue cannot feed a fine-tuning: no groups, no images."""
    train = [p for p in products if p.fields.get("split") == "train" and p.group]
    if not any(p.group for p in products):
        raise UsageError(
            f"--fine-tune trains on match groups, and {dataset_path} has none (no listing "
            "has a 'group'); evaluate without --fine-tune"
        )
    if not train:
        raise UsageError(f"--fine-tune: {dataset_path} has no grouped listing in its train split")
    if "image" in kinds and not any(p.image_path for p in products):
        raise UsageError(
            f"--fine-tune image: {dataset_path} has no images (no listing names an image "
            "file); fine-tune text only"
        )
    if "text" in kinds and not any(p.title.strip() for p in train):
        raise UsageError(f"--fine-tune text: {dataset_path} has no titles in its train split")
    if "image" in kinds and not any(p.image_path for p in train):
        raise UsageError(f"--fine-tune image: {dataset_path} has no images in its train split")


def default_folder(dataset: str) -> Path:
    """``runs/<dataset>-fine-tune-<timestamp>``."""
    return Path("runs") / f"{dataset}-fine-tune-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def work_folder(folder: Path, kind: str = "text") -> Path:
    """``OUT/fine-tune/<kind>-<time>``: the newest one there (a re-run or ``--resume`` goes
    on in it), else a new one. A rebuilt encoder gets a new folder, so a new encoder spec and
    a new collection: its vectors never mix with those of the deleted model. A finished
    folder whose chosen model was deleted (the folder ``search match`` names) is passed
    over, so the rebuild command trains again instead of reusing its record."""
    root = (folder / "fine-tune").resolve()
    found = sorted(p for p in root.glob(f"{kind}-*") if p.is_dir()) if root.is_dir() else []
    found = [p for p in found if not _model_deleted(p)]
    return found[-1] if found else root / f"{kind}-{datetime.now():%Y%m%d-%H%M%S}"


def _model_deleted(work: Path) -> bool:
    """A finished fine-tuning whose fine-tuned model (the one indexed) is gone."""
    from retrieval.encoders.folders import encoder_saved

    done = work / DONE_FILE
    if not done.is_file():
        return False
    record = json.loads(done.read_text(encoding="utf-8"))
    return bool(record.get("improved")) and not encoder_saved(record.get("path") or work)


def prune(work: Path, record: dict[str, Any]) -> None:
    """Once ``fine-tune.json`` is written: each loss's checkpoints (its best step is saved),
    and the losing loss's model (``loss = "best"``: ~90 MB for MiniLM) but its ``fit.json``,
    the curve of what was tried. Nothing read later needs them: a reused run reads the
    winner alone (``record["loss"]``)."""
    from training.catalogue_fit import FIT_FILE

    for loss in record.get("curves", {}):
        shutil.rmtree(work / loss / "checkpoints", ignore_errors=True)
        if loss == record.get("loss") or not (work / loss).is_dir():
            continue
        for path in (work / loss).iterdir():
            if path.name == FIT_FILE:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


@dataclass
class _Run:
    """One encoder's phase 1: reuse its finished run (``--resume``) or train one."""

    cfg: AppConfig
    dataset: Dataset
    dataset_path: str
    products: Sequence[Product]
    result: FineTuned
    zero_shot: list[str]  # the encoder list before any fine-tuned spec joined it
    kind: str  # text, image
    then: tuple[str, ...]  # fine-tunings after this one, for the estimate line
    fmt: str | None = None  # --format, named in the rebuild command

    def phase(
        self, progress: ProgressFactory | None, announce: Callable[[FineTuneEstimate], None] | None
    ) -> tuple[str | None, dict[str, Any], str]:
        """The spec to index (None: zero-shot kept), its info and the note."""
        ft = self.cfg.fine_tune
        work = work_folder(self.result.folder, self.kind)
        if "," in str(work):
            raise UsageError(f"--out {self.result.folder}: an encoder folder may not hold a comma")
        done = work / DONE_FILE
        if done.is_file() and not ft.resume:
            raise UsageError(
                f"{work} already holds a fine-tuned {self.kind} encoder: pass --resume to go "
                "on from it, or pick another --out"
            )
        if done.is_file():
            record = json.loads(done.read_text(encoding="utf-8"))
            log.info("fine-tune %s: reusing %s (step %s)", self.kind, work, record.get("best_step"))
        else:
            train = self._train_text if self.kind == "text" else self._train_image
            record = train(work, progress, self._estimator(announce))
            record["command"] = rebuild_command(
                self.cfg, self.dataset_path, self.result.folder, self.zero_shot, self.fmt
            )
            write_json(done, record, indent=1)
        prune(work, record)  # again on a reuse: a kill may have cut the last one short
        return spec_of(self.kind, record, work)

    def _estimator(
        self, announce: Callable[[FineTuneEstimate], None] | None
    ) -> Callable[[str, int, float, Sequence[str]], None]:
        def estimate(loss: str, steps: int, per_step: float, later: Sequence[str]) -> None:
            told = FineTuneEstimate(
                loss, steps, per_step, (*later, *self.then), len(self.products), self.kind
            )
            self.result.notes.append(told.line())
            if announce is not None:
                announce(told)

        return estimate

    def _split(self, name: str) -> list[Product]:
        return [p for p in self.products if p.fields.get("split") == name]

    def _train_text(
        self, work: Path, progress: ProgressFactory | None, estimate: Any
    ) -> dict[str, Any]:
        from training.text_catalogue import TextFitArgs, fit_catalogue_text

        ft = self.cfg.fine_tune
        model, options = base_text(self.zero_shot, ft.model)
        args = TextFitArgs(
            model=model, out=work, loss=ft.loss, hard_negatives=ft.hard_negatives, **ft.steps()
        )
        queries = [q for q in self.dataset.queries("train") if q.matches]
        valid = self._split(self.cfg.eval.tune_split)
        by_id = {p.id: p for p in self.products}
        fit = fit_catalogue_text(queries, by_id, valid, args, progress, estimate)
        record = {"model": model, "options": options, "vector": VECTORS["text"], **asdict(fit)}
        record["improved"] = fit.improved
        return record

    def _train_image(
        self, work: Path, progress: ProgressFactory | None, estimate: Any
    ) -> dict[str, Any]:
        from training.image_catalogue import ImageFitArgs, fit_catalogue_image

        ft = self.cfg.fine_tune
        model, options = base_image(self.zero_shot, ft.image_model)
        # the text schedule with the image run's own learning rate and step counts
        own = {
            "lr": ft.image_lr,
            "eval_steps": ft.image_eval_steps,
            "max_steps": ft.image_max_steps,
        }
        args = ImageFitArgs(
            model=model, out=work, freeze=ft.image_freeze, neck=ft.image_neck, **(ft.steps() | own)
        )
        train = [p for p in self._split("train") if p.group]
        valid = self._split(self.cfg.eval.tune_split)
        fit = fit_catalogue_image(train, valid, args, progress, estimate)
        record = {"model": model, "options": options, "vector": VECTORS["image"], **asdict(fit)}
        record["improved"] = fit.improved
        return record
