"""The rules every trainer shares: when a run may resume, and how a diverged run stops.

One resume rule for the accelerate loop and the Trainer-based trainers alike:
``--resume`` continues from the newest checkpoint and is an error when there is none;
a fresh run over a folder that already holds checkpoints is an error too (the two
runs' checkpoints would mix). A NaN or infinite loss (or weights) stops the run with
``TrainingDivergedError``, one line naming the step and the last good checkpoint.

Resuming reads only files a run writes, never with a full unpickler: the accelerate
loop's own formats (``training.checkpoint``), and the Trainer's files, which
transformers reads with ``torch.load(weights_only=True)``; a file that loader refuses
(a planted pickle) ends the run with one line (``refused_checkpoint``).
"""

from __future__ import annotations

import contextlib
import logging
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path

from retrieval.errors import SearchError, UsageError

log = logging.getLogger(__name__)


class TrainingDivergedError(SearchError):
    """The loss (or the weights) became NaN or infinite; the run stopped before that
    state was saved, and the checkpoints on disk are left alone."""


def diverged(what: str, step: int, last: str | Path | None) -> TrainingDivergedError:
    """The error for a run that diverged: what went wrong, at which optimiser step, and
    the last good checkpoint (if one was saved)."""
    where = last or "none saved"
    return TrainingDivergedError(
        f"training diverged: {what} at step {step}; stopped, last good checkpoint: {where}"
    )


def resume_from(
    folder: Path, resume: bool, newest: Callable[[Path], str | Path | None]
) -> str | None:
    """The checkpoint a run continues from (``newest(folder)`` finds it), or None for a
    fresh run. ``resume`` without a checkpoint, or a fresh run over one, is a UsageError."""
    last = newest(Path(folder))
    if not resume:
        if last is not None:
            raise UsageError(
                f"{folder} already holds {Path(last).name}: pass --resume to go on "
                "from it, or pick a new --out"
            )
        return None
    if last is None:
        raise UsageError(f"--resume: no checkpoint under {folder} to resume from")
    log.info("resuming from %s", last)
    return str(last)


@contextlib.contextmanager
def refused_checkpoint(checkpoint: str | Path | None) -> Iterator[None]:
    """Around a Trainer's ``train(resume_from_checkpoint=checkpoint)``: a checkpoint file
    the weights-only loader refuses (code in a pickle) is a SearchError, one line."""
    try:
        yield
    except pickle.UnpicklingError as exc:
        if checkpoint is None:
            raise
        first = (str(exc).strip().splitlines() or ["unreadable"])[0]
        raise SearchError(
            f"cannot resume from {checkpoint}: a file there is not plain tensor data "
            f"written by a run, refused unread ({first[:160]})"
        ) from None
