"""What the Trainer-based trainers share: the non-finite-loss stop, the checkpoint lookup
for ``training.resume``'s rule, and the precision / schedule arguments every run sets
the same way.

Transformers is imported inside the functions; ``TrainerCallback`` subclasses are made
by a factory so importing this module stays light.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from retrieval.errors import UsageError
from training.resume import diverged, resume_from

log = logging.getLogger(__name__)


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


def last_checkpoint(folder: Path) -> str | None:
    """The newest ``checkpoint-N`` folder under ``folder``, if any."""
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(folder)) if Path(folder).is_dir() else None


def resume_checkpoint(checkpoints: Path, resume: bool) -> str | None:
    """The Trainer checkpoint ``--resume`` continues from, by ``training.resume``'s rule."""
    return resume_from(checkpoints, resume, last_checkpoint)


def common_arguments(
    checkpoints: Path,
    *,
    epochs: float,
    batch_size: int,
    lr: float,
    warmup: float,
    save_steps: int,
    grad_accum: int = 1,
    seed: int = 0,
    precision: str = "auto",
    max_steps: int = -1,
    keep: int | None = 3,
) -> dict[str, Any]:
    """Keyword arguments shared by our TrainingArguments subclasses: cosine schedule
    with warm-up (a fraction below 1, else steps), AMP on a GPU (bf16 where the card
    has it), checkpoints every ``save_steps`` (the last ``keep``), every step's loss logged.
    ``bf16`` asked on a CPU runs there (``use_cpu``)."""
    import torch

    if batch_size < 1 or grad_accum < 1 or save_steps < 1:
        raise UsageError("--batch-size, --grad-accum and --save-steps must be at least 1")
    if warmup < 0:
        raise UsageError("--warmup must be >= 0 (a fraction of the steps, or a step count)")
    cuda = torch.cuda.is_available()
    bf16 = precision == "bf16" or (precision == "auto" and cuda and torch.cuda.is_bf16_supported())
    fp16 = precision == "fp16" or (precision == "auto" and cuda and not bf16)
    return {
        "output_dir": str(checkpoints),
        "num_train_epochs": epochs,
        "max_steps": max_steps,
        "per_device_train_batch_size": batch_size,
        "gradient_accumulation_steps": grad_accum,
        "learning_rate": lr,
        "lr_scheduler_type": "cosine",
        "warmup_steps": warmup if warmup < 1 else int(warmup),
        "bf16": bf16,
        "fp16": fp16,
        "save_strategy": "steps",
        "save_steps": save_steps,
        "save_total_limit": keep,
        "logging_steps": 1,
        "logging_nan_inf_filter": False,
        "seed": seed,
        "data_seed": seed,
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
