"""The training loop's arguments and where a run stands: ``LoopOptions`` (the settings a
trainer's options table repeats) and ``LoopArgs``, the position a checkpoint records
(``LoopState``, in ``trainer_state.json``, written last so a folder without it is an
unfinished checkpoint), what a run returns (``LoopResult``), and the checkpoint folders
under a run's ``out`` (``checkpoints``, ``newest_checkpoint``). ``training.loop`` runs it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from retrieval.errors import SearchError

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"


@dataclass
class LoopOptions:
    """The loop's settings a trainer's options table repeats (``search.train``: the
    ``[train.KIND]`` tables of the loop trainers take these, with their own defaults)."""

    epochs: int = 1
    batch_size: int = 32
    lr: float = 1e-5
    weight_decay: float = 0.1
    warmup_steps: int = 0
    accumulate: int = 1
    save_steps: int = 0  # 0: at the end of each epoch
    keep: int = 2
    resume: bool = False
    precision: str = "auto"
    device: str = "auto"
    seed: int = 0
    max_steps: int | None = None
    num_workers: int = 0


@dataclass
class LoopArgs(LoopOptions):
    """Arguments of ``train_loop`` (optimiser steps count after accumulation)."""

    out: Path = field(kw_only=True)
    max_grad_norm: float | None = 1.0
    progress: bool = True
    find_unused_parameters: bool = True
    eval_steps: int = 0  # > 0: evaluate every eval_steps optimiser steps, not per epoch


@dataclass
class LoopState:
    """Where a run stands: optimiser steps, epoch, and batches done in that epoch."""

    step: int = 0
    epoch: int = 0
    batch: int = 0

    @classmethod
    def read(cls, folder: Path) -> LoopState:
        """The position a checkpoint folder's ``trainer_state.json`` records."""
        try:
            info = json.loads((folder / STATE_FILE).read_text())
            return cls(int(info["step"]), int(info["epoch"]), int(info["batch"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SearchError(f"cannot resume: {folder / STATE_FILE} is damaged ({exc})") from None


@dataclass
class LoopResult:
    """Loss per optimiser step (this run's), evaluations, last checkpoint, and whether
    ``stop`` ended the run early."""

    state: LoopState
    losses: list[float] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)
    checkpoint: Path | None = None
    stopped: bool = False


def newest_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint under ``out``, if any; a folder without its
    ``trainer_state.json`` (written last, atomically) is unfinished: logged and skipped."""
    found = checkpoints(out)
    for folder in sorted((Path(out) / CHECKPOINTS).glob("step-*")):
        if folder not in found:
            log.warning("skipping checkpoint %s: cut short (no %s)", folder, STATE_FILE)
    return found[-1] if found else None


def checkpoints(out: Path) -> list[Path]:
    """Complete checkpoints under ``out``, oldest first."""
    folder = Path(out) / CHECKPOINTS
    found = [p for p in folder.glob("step-*") if (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-", 1)[1]))


def evals_of(checkpoint: Path) -> list[dict[str, float]]:
    """The evaluations a checkpoint's state file records (none in an older one)."""
    info = json.loads((checkpoint / STATE_FILE).read_text())
    evals = info.get("evals") if isinstance(info, dict) else None
    return [e for e in evals if isinstance(e, dict)] if isinstance(evals, list) else []
