"""What the catalogue fine-tunings of ``search eval --fine-tune`` share: the text one
(``training.text_catalogue``) and the image one (``training.image_catalogue``).

Each loss trains into ``OUT/<loss>`` and writes ``fit.json`` last, so a resumed run
reuses a finished loss; its step time is measured on its first steps and announced as an
estimate of its run, and a progress bar follows its steps (``StepClock``); every
``eval_steps`` it is scored by the valid split's match F1 of its cosine, its best step kept;
the loss whose best step scores higher on valid wins (``fit_losses``). ``FitSchedule`` is
the schedule both read, and ``arcface_schedule`` turns it into the ArcFace trainers'
arguments (``training.arcface``), so text and image ArcFace run the same schedule.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from retrieval.atomic import write_json
from retrieval.types import ProgressFactory

log = logging.getLogger(__name__)
PROBE_STEPS = 3  # steps timed before the estimate is made
FIT_FILE = "fit.json"  # written last into OUT/<loss>: that loss is finished
METRIC = "eval_valid_match_f1"

# (loss, steps left, measured seconds per step, losses still to train after it)
Announce = Callable[[str, int, float, Sequence[str]], None]
# (best step, its valid match F1, steps run, the evaluations: METRIC per step)
LossRun = tuple[int | None, float, int, list[dict[str, Any]]]


@dataclass
class FitSteps:
    """The schedule of one fine-tuning: batches, learning rate, and how the step is chosen
    on valid (scored every ``eval_steps``, stopped after ``patience`` scores without a
    gain, at most ``max_steps``). The defaults are the schedule measured on wdc-products
    (docs/fine-tune.md); ``search.config_fine_tune.FineTuneConfig`` inherits them."""

    batch_size: int = 32
    lr: float = 5e-5
    eval_steps: int = 100
    patience: int = 1
    max_steps: int = 500
    seed: int = 0
    resume: bool = False

    def steps(self) -> dict[str, Any]:
        """These settings by name: the keyword arguments of a ``FitSchedule``."""
        return {f.name: getattr(self, f.name) for f in fields(FitSteps)}


@dataclass
class FitSchedule(FitSteps):
    """One fine-tuning's schedule with its start model, its folder and its warm-up."""

    model: str = field(kw_only=True)
    out: Path = field(kw_only=True)
    warmup: float = 0.05


@dataclass
class LossFit:
    """One loss's run: its best step and valid F1, and the curve (``METRIC`` per step)."""

    loss: str
    best_step: int | None
    best_f1: float
    steps_run: int
    seconds: float
    step_seconds: float | None
    evals: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class CatalogueFit:
    """What the run chose: the loss, its best step and valid F1, against the zero-shot
    F1; ``curves`` holds every loss tried (``LossFit`` as dicts), ``path`` the winner."""

    best_step: int | None
    best_f1: float
    zero_shot_f1: float
    steps_run: int
    seconds: float
    step_seconds: float | None
    evals: list[dict[str, Any]] = field(default_factory=list)
    skipped: str = ""  # why nothing was trained ("" when trained)
    loss: str = ""
    path: str = ""
    curves: dict[str, dict[str, Any]] = field(default_factory=dict)
    # photos that did not read, left out (image: count, listings, first: path -> reason)
    skipped_photos: dict[str, Any] = field(default_factory=dict)

    @property
    def improved(self) -> bool:
        return not self.skipped and self.best_step is not None and self.best_f1 > self.zero_shot_f1

    @classmethod
    def skip(cls, why: str, photos: dict[str, Any] | None = None) -> CatalogueFit:
        """Nothing trained, and why (the caller keeps the zero-shot encoder)."""
        return cls(None, 0.0, 0.0, 0, 0.0, None, skipped=why, skipped_photos=photos or {})


def fit_losses(
    what: str,
    losses: Sequence[str],
    schedule: FitSchedule,
    zero_shot_f1: float,
    run: Callable[[str, Path, StepClock], LossRun],
    progress: ProgressFactory | None = None,
    announce: Announce | None = None,
) -> CatalogueFit:
    """Each loss run by ``run(loss, OUT/<loss>, clock)`` (or its finished ``fit.json``
    reused); the one with the higher valid F1 wins (ties: the first). ``what`` names the
    encoder in the log and on the bars (text, image)."""
    start = time.perf_counter()
    fits = []
    for i, loss in enumerate(losses):
        out = Path(schedule.out) / loss
        done = out / FIT_FILE
        if done.is_file():
            log.info("fine-tune %s (%s): reusing the finished run in %s", what, loss, out)
            fits.append(LossFit(**json.loads(done.read_text(encoding="utf-8"))))
            continue
        clock = StepClock(loss, schedule.max_steps, progress, announce, losses[i + 1 :], what)
        began = time.perf_counter()
        best_step, best_f1, steps, evals = run(loss, out, clock)
        fit = LossFit(loss, best_step, best_f1, steps, time.perf_counter() - began, clock.per_step)
        fit.evals = evals
        write_json(done, asdict(fit), indent=1)
        fits.append(fit)
    win = max(fits, key=lambda f: (f.best_f1, -list(losses).index(f.loss)))
    return CatalogueFit(
        best_step=win.best_step,
        best_f1=win.best_f1,
        zero_shot_f1=float(zero_shot_f1),
        steps_run=win.steps_run,
        seconds=time.perf_counter() - start,
        step_seconds=win.step_seconds,
        evals=win.evals,
        loss=win.loss,
        path=str(Path(schedule.out) / win.loss),
        curves={f.loss: asdict(f) for f in fits},
    )


def arcface_schedule(schedule: FitSchedule, out: Path, listings: int) -> dict[str, Any]:
    """The ArcFace trainers' arguments (``training.arcface.ArcFaceArgs``) for ``schedule``:
    scored every ``eval_steps`` on the valid match F1, a checkpoint at each score, the
    margin grown over the first ``eval_steps`` (a cold head with the full margin stalls)."""
    from training.loop import newest_checkpoint

    return dict(
        out=out,
        batch_size=schedule.batch_size,
        lr=schedule.lr,
        warmup_steps=int(schedule.warmup * schedule.max_steps),
        epochs=_epochs(listings, schedule.batch_size, schedule.max_steps),
        max_steps=schedule.max_steps,
        save_steps=schedule.eval_steps,
        eval_steps=schedule.eval_steps,
        margin_warmup=schedule.eval_steps,
        patience=schedule.patience,
        select=METRIC.removeprefix("eval_"),  # the evaluator's key
        keep=1,
        seed=schedule.seed,
        progress=False,  # the caller's bar (StepClock) follows the steps
        resume=schedule.resume and newest_checkpoint(out) is not None,
    )


def arcface_run(result: Any, best: dict[str, Any]) -> LossRun:
    """An ArcFace trainer's loop result and best evaluation as a ``LossRun``."""
    evals = [
        {"step": int(e["step"]), **{f"eval_{k}": v for k, v in e.items() if k.startswith("valid")}}
        for e in result.evals
    ]
    return best.get("step"), float(best.get("key", [0.0])[0]), result.state.step, evals


def _epochs(listings: int, batch_size: int, max_steps: int) -> int:
    """Enough epochs for ``max_steps`` (an epoch is about ``listings / batch_size`` steps)."""
    return max(1, math.ceil(max_steps / max(1, listings // batch_size)) + 1)


class StepClock:
    """Times one loss's first steps, announces the estimate, then ticks a progress bar."""

    def __init__(
        self,
        loss: str,
        max_steps: int,
        progress: ProgressFactory | None,
        announce: Announce | None,
        later: Sequence[str] = (),
        what: str = "text",
    ) -> None:
        self.loss, self.max_steps, self.later, self.what = loss, max_steps, tuple(later), what
        self.progress, self.announce = progress, announce
        self.per_step: float | None = None
        self._first: int | None = None  # the step before this process's first one
        self._t0 = 0.0
        self._tick: Callable[[int], None] | None = None

    def step(self, global_step: int) -> None:
        """Called after each optimiser step (a resumed run starts past 1)."""
        if self._first is None:
            self._first = global_step - 1
        ran = global_step - self._first
        if ran == 1:
            self._t0 = time.perf_counter()  # the first step carries the start-up
        elif ran == PROBE_STEPS + 1 and self.per_step is None:
            self.per_step = (time.perf_counter() - self._t0) / PROBE_STEPS
            left = self.max_steps - global_step
            log.info("fine-tune %s (%s): %.2f s/step measured, %d steps left at most",
                     self.what, self.loss, self.per_step, left)  # fmt: skip
            if self.announce is not None:
                self.announce(self.loss, left, self.per_step, self.later)
            if self.progress is not None:
                self._tick = self.progress(
                    f"fine-tune {self.what}, {self.loss} (≤{self.max_steps} steps, "
                    f"~{self.per_step:.1f} s each)",
                    left,
                )
        elif self._tick is not None:
            self._tick(1)

    def callback(self) -> Any:
        """The TrainerCallback that drives ``step``."""
        from transformers import TrainerCallback

        clock = self

        class Clock(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                clock.step(state.global_step)
                return control

        return Clock()
