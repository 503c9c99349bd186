"""``search eval --fine-tune text``: the encoders fine-tuned on the catalogue's own train
groups before the collection is indexed and the matcher tuned (the Shopee winners'
recipe, in one command).

Phases, each resumable (``--resume``, the same ``--out``):

1. fine-tune (``training.text_catalogue``): the train split's groups, each loss of
   ``fine_tune.loss`` (in-batch negatives, ArcFace, or ``best``: both, the better on
   valid kept), the step count chosen on valid's match F1; the encoders land in
   ``OUT/fine-tune/text-<time>/<loss>`` with ``fine-tune.json`` written last (a folder
   without it is unfinished: ``--resume`` goes on from its newest complete checkpoint).
   Each loss's measured step time is reported before its run as a ``FineTuneEstimate``
   (``announce``: the CLI prints its line);
2. index: the fine-tuned vector (``text_ft``) beside the zero-shot ones in one
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
import shlex
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from retrieval.atomic import write_json
from retrieval.data.base import Dataset
from retrieval.errors import UsageError
from retrieval.types import ComponentSpec, Product, ProgressFactory
from search.config import AppConfig

log = logging.getLogger(__name__)
DONE_FILE = "fine-tune.json"
VECTOR = "text_ft"


@dataclass(frozen=True)
class FineTuneEstimate:
    """What a loss's run will cost, measured on its first steps, and what follows it."""

    loss: str
    steps: int  # at most this many more (early stopping ends it sooner)
    step_seconds: float
    later: tuple[str, ...]  # losses still to train after this one
    listings: int  # to index afterwards

    def line(self) -> str:
        """The one line the user sees before the run."""
        minutes = self.steps * self.step_seconds / 60
        then = "".join(f", then {loss} (timed when it starts)" for loss in self.later)
        return (
            f"fine-tuning text ({self.loss}): at most {self.steps} steps x "
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


def fine_tune_phase(
    cfg: AppConfig,
    dataset_path: str,
    fmt: str | None,
    encoders: Sequence[str] | None,
    out: str | Path | None,
    progress: ProgressFactory | None = None,
    announce: Callable[[FineTuneEstimate], None] | None = None,
) -> FineTuned:
    """Fine-tune ``cfg.fine_tune.encoders``; the encoder list gains their specs.
    ``announce`` is given each loss's estimate before its run."""
    from retrieval.data import open_dataset

    ft = cfg.fine_tune
    if ft.resume and out is None:
        raise UsageError("--resume needs --out: the run folder of the run to go on from")
    dataset = open_dataset(dataset_path, format=fmt)
    products = list(dataset.products())
    check_feedable(dataset_path, products, ft.encoders)
    folder = Path(out) if out is not None else default_folder(dataset.name)
    result = FineTuned(list(encoders or cfg.stage1.encoders), folder)
    if "image" in ft.encoders:
        raise UsageError(
            "--fine-tune image is not available yet (train an image model with `search "
            "train biencoder --kind timm` and pass it as --encoder timm:OUT); use --fine-tune text"
        )
    spec, info, note = _text(cfg, dataset, dataset_path, products, result, progress, announce)
    result.notes.append(note)
    if spec is not None:
        result.encoders.append(spec)
        result.encoders_info[VECTOR] = info
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


def default_folder(dataset: str) -> Path:
    """``runs/<dataset>-fine-tune-<timestamp>``."""
    return Path("runs") / f"{dataset}-fine-tune-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def base_text(encoders: Sequence[str], model: str | None) -> tuple[str, dict[str, str]]:
    """The start model and the spec options of the zero-shot ``text`` encoder."""
    from retrieval.encoders.text import resolve_model

    for text in encoders:
        spec = ComponentSpec.parse(text)
        if spec.kind == "text" and spec.options.get("name", "text") == "text":
            options = {k: v for k, v in spec.options.items() if k != "name"}
            return resolve_model(model or spec.model), options
    return resolve_model(model), {}


def rebuild_command(cfg: AppConfig, dataset_path: str, folder: Path) -> str:
    """The command that (re)builds this run's fine-tuned encoder and matcher."""
    words = ["search", "eval", str(Path(dataset_path).resolve()), "--fine-tune"]
    words += [",".join(cfg.fine_tune.encoders), "--out", str(folder.resolve())]
    words += ["--match-pair"] if cfg.eval.match_pair else []
    return shlex.join(words)


def work_folder(folder: Path) -> Path:
    """``OUT/fine-tune/text-<time>``: the newest one there (a re-run or ``--resume`` goes on
    in it), else a new one. A rebuilt encoder gets a new folder, so a new encoder spec and a
    new collection: its vectors never mix with those of the deleted model."""
    root = (folder / "fine-tune").resolve()
    found = sorted(p for p in root.glob("text-*") if p.is_dir()) if root.is_dir() else []
    return found[-1] if found else root / f"text-{datetime.now():%Y%m%d-%H%M%S}"


def _text(
    cfg: AppConfig,
    dataset: Dataset,
    dataset_path: str,
    products: Sequence[Product],
    result: FineTuned,
    progress: ProgressFactory | None,
    announce: Callable[[FineTuneEstimate], None] | None,
) -> tuple[str | None, dict[str, Any], str]:
    """Phase 1 for text: reuse a finished run (``--resume``) or train one."""
    ft = cfg.fine_tune
    work = work_folder(result.folder)
    if "," in str(work):
        raise UsageError(f"--out {result.folder}: an encoder folder may not hold a comma")
    done = work / DONE_FILE
    if done.is_file() and not ft.resume:
        raise UsageError(
            f"{work} already holds a fine-tuned text encoder: pass --resume to go on from "
            "it, or pick another --out"
        )
    if done.is_file():
        record = json.loads(done.read_text(encoding="utf-8"))
        log.info("fine-tune text: reusing %s (step %s)", work, record.get("best_step"))
    else:
        record = _train(cfg, dataset, products, result, work, progress, announce)
        record["command"] = rebuild_command(cfg, dataset_path, result.folder)
        write_json(done, record, indent=1)
        for loss in record.get("curves", {}):  # each loss's best step is saved
            shutil.rmtree(work / loss / "checkpoints", ignore_errors=True)
    return _spec(record, work)


def _train(
    cfg: AppConfig,
    dataset: Dataset,
    products: Sequence[Product],
    result: FineTuned,
    work: Path,
    progress: ProgressFactory | None,
    announce: Callable[[FineTuneEstimate], None] | None,
) -> dict[str, Any]:
    from training.text_catalogue import TextFitArgs, fit_catalogue_text

    ft = cfg.fine_tune
    model, options = base_text(result.encoders, ft.model)
    args = TextFitArgs(
        model=model,
        out=work,
        batch_size=ft.batch_size,
        lr=ft.lr,
        eval_steps=ft.eval_steps,
        patience=ft.patience,
        max_steps=ft.max_steps,
        seed=ft.seed,
        resume=ft.resume,
        loss=ft.loss,
    )

    def estimate(loss: str, steps: int, per_step: float, later: Sequence[str]) -> None:
        told = FineTuneEstimate(loss, steps, per_step, tuple(later), len(products))
        result.notes.append(told.line())
        if announce is not None:
            announce(told)

    queries = [q for q in dataset.queries("train") if q.matches]
    valid = [p for p in products if p.fields.get("split") == cfg.eval.tune_split]
    fit = fit_catalogue_text(queries, {p.id: p for p in products}, valid, args, progress, estimate)
    record = {"model": model, "options": options, "vector": VECTOR, **asdict(fit)}
    record["improved"] = fit.improved
    return record


def _spec(record: dict[str, Any], work: Path) -> tuple[str | None, dict[str, Any], str]:
    """The encoder spec to index (None: zero-shot kept), its info and the note."""
    if record.get("skipped"):
        return None, {}, f"fine-tune text skipped, zero-shot kept: {record['skipped']}"
    zero, best = record["zero_shot_f1"], record["best_f1"]
    if not record.get("improved"):
        return (
            None,
            {},
            (
                f"fine-tune text: no step beat the zero-shot valid F1 {zero:.4f} "
                f"(best {best:.4f}): zero-shot kept"
            ),
        )
    options = "".join(f",{k}={v}" for k, v in record.get("options", {}).items())
    path = Path(record.get("path") or work)
    spec = f"text:{path}{options},name={VECTOR}"
    info = {"path": str(path), "command": record["command"], "best_step": record["best_step"]}
    info["loss"] = record.get("loss", "mnrl")
    tried = ", ".join(
        f"{loss} {c['best_f1']:.4f} at step {c['best_step']} of {c['steps_run']}"
        for loss, c in record.get("curves", {}).items()
    )
    minutes = record["seconds"] / 60
    note = (
        f"fine-tune text: loss {info['loss']}, step {record['best_step']} of "
        f"{record['steps_run']} chosen on valid (match F1 {zero:.4f} zero-shot -> {best:.4f}"
        + (f"; tried {tried}" if tried else "")
        + f"), {minutes:.1f} min"
        + (f" at {record['step_seconds']:.2f} s/step" if record.get("step_seconds") else "")
        + f"; vector {VECTOR!r} from {path}"
    )
    return spec, info, note
