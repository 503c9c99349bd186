"""What the Trainer-based trainers share: the non-finite-loss stop, checkpoints marked
complete and the lookup of the newest complete one for ``training.resume``'s rule (the
three put around a Trainer by ``TrainerRun``), and the precision / schedule arguments
every run sets the same way.

The Trainer writes a checkpoint's files in place, one after another (weights, optimizer,
scheduler, RNG state, ``trainer_state.json``), so a kill leaves a folder with some of
them, empty or cut short. ``complete_marker_callback`` writes ``checkpoint-complete.json``
(every file's size) through the atomic writer once the Trainer is done with a folder: a
folder is complete only when that marker is there and every file has its recorded size.
Resume takes the newest complete checkpoint and logs each one it skipped.

Transformers is imported inside the functions; ``TrainerCallback`` subclasses are made
by a factory so importing this module stays light.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
from pathlib import Path
from typing import Any, Protocol

from retrieval.atomic import write_json
from retrieval.errors import UsageError
from training.resume import diverged, refused_checkpoint

log = logging.getLogger(__name__)
COMPLETE = "checkpoint-complete.json"
CHECKPOINT = re.compile(r"checkpoint-(\d+)")


def nan_stop_callback() -> Any:
    """A TrainerCallback that stops the run at the first NaN/inf logged loss, before
    that step is saved (``logging_steps=1`` and ``logging_nan_inf_filter=False`` make
    every step's own loss reach it). ``bad_step``/``bad_loss`` say where it happened."""
    from transformers import TrainerCallback

    class NonFiniteLossStop(TrainerCallback):
        def __init__(self) -> None:
            self.bad_step: int | None = None
            self.bad_loss: float | None = None

        def on_log(self, args, state, control, logs=None, **kwargs):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)) and self.bad_step is None:
                self.bad_step, self.bad_loss = state.global_step, float(loss)
                control.should_save = False
                control.should_evaluate = False
                control.should_training_stop = True
                log.error("loss is %s at step %d: stopping", loss, state.global_step)
            return control

    return NonFiniteLossStop()


def raise_if_diverged(callback: Any, checkpoints: Path) -> None:
    """Raise TrainingDivergedError (one line: step, loss, last good checkpoint) if it fired."""
    if callback.bad_step is not None:
        loss = f"loss {callback.bad_loss}"
        raise diverged(loss, callback.bad_step, last_checkpoint(checkpoints))


def mark_complete(folder: Path) -> None:
    """Record every file of a finished checkpoint folder and its size, atomically."""
    folder = Path(folder)
    files = {
        p.relative_to(folder).as_posix(): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != COMPLETE and not p.name.startswith(".")
    }
    write_json(folder / COMPLETE, {"files": files}, indent=1)


def unfinished(folder: Path) -> str | None:
    """Why a checkpoint folder is not complete (cut short, a file missing or of another
    size than when it was written), or None when it is."""
    try:
        files = json.loads((Path(folder) / COMPLETE).read_text(encoding="utf-8"))["files"]
        if not isinstance(files, dict) or not files:
            raise ValueError("no files")
    except FileNotFoundError:
        return f"cut short (no {COMPLETE})"
    except (OSError, ValueError, KeyError, TypeError):
        return f"its {COMPLETE} is damaged"
    for name, size in files.items():
        try:
            actual = (Path(folder) / name).stat().st_size
        except OSError:
            return f"{name} is missing"
        if actual != size:
            return f"{name} is {actual} bytes, {size} when it was written"
    return None


def complete_marker_callback() -> Any:
    """A TrainerCallback that marks each checkpoint complete once the Trainer has saved
    it (``on_save`` follows the last file of the folder)."""
    from transformers import TrainerCallback

    class MarkComplete(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if state.is_world_process_zero and folder.is_dir():
                mark_complete(folder)
            return control

    return MarkComplete()


def step_of(folder: Path) -> int:
    """The step of a ``checkpoint-N`` folder."""
    return int(CHECKPOINT.fullmatch(Path(folder).name).group(1))


def scan_checkpoints(folder: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The complete ``checkpoint-N`` folders under ``folder`` (oldest first) and the
    unfinished ones with the reason."""
    found = []
    if Path(folder).is_dir():
        found = [p for p in Path(folder).iterdir() if CHECKPOINT.fullmatch(p.name) and p.is_dir()]
    complete, broken = [], []
    for p in sorted(found, key=step_of):
        reason = unfinished(p)
        if reason is None:
            complete.append(p)
        else:
            broken.append((p, reason))
    return complete, broken


def last_checkpoint(folder: Path) -> str | None:
    """The newest complete ``checkpoint-N`` folder under ``folder``, if any."""
    complete, _ = scan_checkpoints(folder)
    return str(complete[-1]) if complete else None


def resume_checkpoint(checkpoints: Path, resume: bool) -> str | None:
    """The Trainer checkpoint ``--resume`` continues from: the newest complete one, each
    unfinished one skipped with a log line (and removed when newer: the run writes it
    again). ``--resume`` with no complete checkpoint, or a fresh run over a complete
    one, is a UsageError; a fresh run removes unfinished ones."""
    complete, broken = scan_checkpoints(checkpoints)
    for path, reason in broken:
        log.warning("skipping checkpoint %s: %s", path, reason)
    if not resume:
        if complete:
            raise UsageError(
                f"{checkpoints} already holds {complete[-1].name}: pass --resume to go on "
                "from it, or pick a new --out"
            )
        drop(p for p, _ in broken)
        return None
    if not complete and broken:
        cut = ", ".join(p.name for p, _ in broken)
        raise UsageError(
            f"--resume: no complete checkpoint under {checkpoints} to resume from ({cut} "
            "unfinished); run without --resume to start afresh"
        )
    if not complete:
        raise UsageError(f"--resume: no checkpoint under {checkpoints} to resume from")
    newest = complete[-1]
    drop(p for p, _ in broken if step_of(p) > step_of(newest))
    log.info("resuming from %s", newest)
    return str(newest)


def drop(folders: Any) -> None:
    """Remove unfinished checkpoint folders (the run writes those steps again)."""
    for path in folders:
        log.warning("removing unfinished checkpoint %s", path)
        shutil.rmtree(path, ignore_errors=True)


class TrainerRun:
    """What every Trainer run of ours does around its Trainer: the checkpoint ``--resume``
    goes on from (``resume_checkpoint``, looked up before the model is built), the NaN
    stop and the complete markers among its callbacks, a refused checkpoint file as one
    line, and the stop's verdict after training."""

    def __init__(self, checkpoints: Path, resume: bool) -> None:
        self.checkpoints = checkpoints
        self.start_from = resume_checkpoint(checkpoints, resume)
        self.stop = nan_stop_callback()

    def callbacks(self, *extra: Any) -> list[Any]:
        """The Trainer's callbacks: the NaN stop first, the complete markers, ``extra``."""
        return [self.stop, complete_marker_callback(), *extra]

    def train(self, trainer: Any) -> Any:
        """``trainer.train()`` from the checkpoint found; a non-finite loss raises
        ``TrainingDivergedError`` naming the last good checkpoint."""
        with refused_checkpoint(self.start_from):
            result = trainer.train(resume_from_checkpoint=self.start_from)
        raise_if_diverged(self.stop, self.checkpoints)
        return result


class Schedule(Protocol):
    """The settings every Trainer run of ours reads from its trainer's config
    (``CrossEncoderConfig``, ``TextBiencoderConfig``): warm-up a fraction below 1, else
    steps; precision ``auto``, ``bf16``, ``fp16`` or ``fp32``."""

    epochs: float
    batch_size: int
    lr: float
    warmup: float
    save_steps: int
    grad_accum: int
    seed: int
    precision: str
    max_steps: int


def common_arguments(
    checkpoints: Path, cfg: Schedule, *, save_steps: int | None = None, keep: int | None = 3
) -> dict[str, Any]:
    """Keyword arguments shared by our TrainingArguments subclasses, from a trainer's
    config: cosine schedule with warm-up, AMP on a GPU (bf16 where the card has it),
    checkpoints every ``save_steps`` (default the config's; the last ``keep``), every
    step's loss logged. ``bf16`` asked on a CPU runs there (``use_cpu``)."""
    import torch

    save_steps = cfg.save_steps if save_steps is None else save_steps
    if cfg.batch_size < 1 or cfg.grad_accum < 1 or save_steps < 1:
        raise UsageError("--batch-size, --grad-accum and --save-steps must be at least 1")
    if cfg.warmup < 0:
        raise UsageError("--warmup must be >= 0 (a fraction of the steps, or a step count)")
    cuda = torch.cuda.is_available()
    precision = cfg.precision
    bf16 = precision == "bf16" or (precision == "auto" and cuda and torch.cuda.is_bf16_supported())
    fp16 = precision == "fp16" or (precision == "auto" and cuda and not bf16)
    return {
        "output_dir": str(checkpoints),
        "num_train_epochs": cfg.epochs,
        "max_steps": cfg.max_steps,
        "per_device_train_batch_size": cfg.batch_size,
        "gradient_accumulation_steps": cfg.grad_accum,
        "learning_rate": cfg.lr,
        "lr_scheduler_type": "cosine",
        "warmup_steps": cfg.warmup if cfg.warmup < 1 else int(cfg.warmup),
        "bf16": bf16,
        "fp16": fp16,
        "save_strategy": "steps",
        "save_steps": save_steps,
        "save_total_limit": keep,
        "logging_steps": 1,
        "logging_nan_inf_filter": False,
        "seed": cfg.seed,
        "data_seed": cfg.seed,
        "report_to": "none",
        "dataloader_num_workers": 0,
        "dataloader_pin_memory": cuda,
        **({"use_cpu": True} if bf16 and not cuda else {}),
    }


def cpu_autocast_bf16() -> bool:
    """Whether this CPU runs bf16 matrix products natively (oneDNN's check): there bf16
    autocast trains a MiniLM cross-encoder ~1.5x faster than fp32 (README, Train). The
    trainer wraps its forward pass itself rather than setting the Trainer's ``bf16``, which
    would fix accelerate's process-wide mixed-precision state for every later trainer."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
