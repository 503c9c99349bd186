"""A text encoder fine-tuned on a catalogue's train groups: the loss and the step count
chosen on valid.

What ``search eval --fine-tune text`` runs: in-batch negatives
(``training.text.train_text_biencoder``, loss ``mnrl``) over every same-group title pair
of the train split, and ArcFace (``training.arcface_text``, loss ``arcface``) over the
train titles as samples of their groups; each evaluated every ``eval_steps`` steps by the
match F1 of its cosine on the valid split (``training.match_eval``), its best step kept,
its run stopped once ``patience`` evaluations in a row bring no gain. ``loss = "best"``
trains both (each into ``OUT/<loss>``, with a ``fit.json`` once finished, so a resumed
run skips it) and keeps the one with the higher valid F1. The zero-shot model is scored
first, so a run that never beats it says so (and the caller keeps the zero-shot
encoder). The valid and test listings are never trained on.

Each loss's step time is measured on its first steps and reported (``announce``) as an
estimate of its run, and a progress bar follows the steps.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from retrieval.atomic import write_json
from retrieval.errors import UsageError
from retrieval.types import Product, ProgressFactory, Query
from training.match_eval import MatchF1Evaluator
from training.text import PairRows, TextBiencoderConfig, build_rows, train_text_biencoder

log = logging.getLogger(__name__)
PROBE_STEPS = 3  # steps timed before the estimate is made
LOSSES = ("mnrl", "arcface")
LOSS_CHOICES = (*LOSSES, "best")
FIT_FILE = "fit.json"  # written last into OUT/<loss>: that loss is finished
METRIC = "eval_valid_match_f1"

# (loss, steps left, measured seconds per step, losses still to train after it)
Announce = Callable[[str, int, float, Sequence[str]], None]


@dataclass
class TextFitArgs:
    """The fine-tuning of ``search eval --fine-tune text`` (``[fine_tune]`` in a config)."""

    model: str
    out: Path
    batch_size: int = 32
    lr: float = 5e-5
    warmup: float = 0.05
    eval_steps: int = 100
    patience: int = 1
    max_steps: int = 500
    seed: int = 0
    resume: bool = False
    loss: str = "best"  # "mnrl", "arcface", or "best": both, the better on valid kept

    def losses(self) -> tuple[str, ...]:
        if self.loss not in LOSS_CHOICES:
            raise UsageError(
                f"unknown loss {self.loss!r}; expected one of {', '.join(LOSS_CHOICES)}"
            )
        return LOSSES if self.loss == "best" else (self.loss,)


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
class TextFitResult:
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

    @property
    def improved(self) -> bool:
        return not self.skipped and self.best_step is not None and self.best_f1 > self.zero_shot_f1


def valid_evaluator(valid: Sequence[Product]) -> MatchF1Evaluator | None:
    """The match-F1 evaluator over valid's titled, grouped listings (None if too few)."""
    kept = [p for p in valid if p.group and p.title.strip()]
    if len(kept) < 2:
        return None
    return MatchF1Evaluator([p.title for p in kept], [str(p.group) for p in kept])


def fit_catalogue_text(
    train_queries: Sequence[Query],
    products: dict[str, Product],
    valid: Sequence[Product],
    args: TextFitArgs,
    progress: ProgressFactory | None = None,
    announce: Announce | None = None,
) -> TextFitResult:
    """Fine-tune ``args.model`` on the train queries' groups with each loss of
    ``args.loss`` into ``args.out/<loss>``; the best on valid is the result."""
    from sentence_transformers import SentenceTransformer

    start = time.perf_counter()
    losses = args.losses()
    rows = build_rows(train_queries, products)
    groups = len(set(rows.groups))
    evaluator = valid_evaluator(valid)
    if evaluator is None:
        raise UsageError("the valid split has under 2 grouped, titled listings: no step to choose")
    if groups < args.batch_size:
        why = (
            f"the train split has {groups} match groups with title pairs, fewer than a batch "
            f"of {args.batch_size}: a batch cannot avoid two items of one group"
        )
        return TextFitResult(None, 0.0, 0.0, 0, 0.0, None, skipped=why)
    zero = evaluator(SentenceTransformer(args.model, device="cpu"))["valid_match_f1"]
    log.info("zero-shot valid match F1 %.4f; %d pairs in %d groups", zero, len(rows), groups)
    fits = []
    for i, loss in enumerate(losses):
        clock = StepClock(loss, args.max_steps, progress, announce, losses[i + 1 :])
        fits.append(_fit_loss(loss, rows, train_queries, products, evaluator, args, clock))
    win = max(fits, key=lambda f: (f.best_f1, -losses.index(f.loss)))  # ties: the first
    return TextFitResult(
        best_step=win.best_step,
        best_f1=win.best_f1,
        zero_shot_f1=float(zero),
        steps_run=win.steps_run,
        seconds=time.perf_counter() - start,
        step_seconds=win.step_seconds,
        evals=win.evals,
        loss=win.loss,
        path=str(Path(args.out) / win.loss),
        curves={f.loss: asdict(f) for f in fits},
    )


def _fit_loss(
    loss: str,
    rows: PairRows,
    train_queries: Sequence[Query],
    products: dict[str, Product],
    evaluator: MatchF1Evaluator,
    args: TextFitArgs,
    clock: StepClock,
) -> LossFit:
    """One loss's run into ``args.out/<loss>`` (or its finished ``fit.json``, reused)."""
    out = Path(args.out) / loss
    done = out / FIT_FILE
    if done.is_file():
        log.info("fine-tune text (%s): reusing the finished run in %s", loss, out)
        return LossFit(**json.loads(done.read_text(encoding="utf-8")))
    start = time.perf_counter()
    if loss == "mnrl":
        best_step, best_f1, steps, evals = _fit_mnrl(rows, evaluator, args, out, clock)
    else:
        best_step, best_f1, steps, evals = _fit_arcface(
            train_queries, products, evaluator, args, out, clock
        )
    fit = LossFit(loss, best_step, best_f1, steps, time.perf_counter() - start, clock.per_step)
    fit.evals = evals
    write_json(done, asdict(fit), indent=1)
    return fit


def _fit_mnrl(
    rows: PairRows, evaluator: MatchF1Evaluator, args: TextFitArgs, out: Path, clock: StepClock
) -> tuple[int | None, float, int, list[dict[str, Any]]]:
    """In-batch negatives over the same-group title pairs (``training.text``)."""
    from training.callbacks import last_checkpoint

    config = TextBiencoderConfig(
        batch_size=args.batch_size,
        lr=args.lr,
        warmup=args.warmup,
        epochs=1.0,  # max_steps rules
        max_steps=args.max_steps,
        eval_steps=args.eval_steps,
        patience=args.patience,
        keep=1,
        seed=args.seed,
    )
    resume = args.resume and last_checkpoint(out / "checkpoints") is not None
    summary = train_text_biencoder(
        rows, args.model, out, config, evaluator=evaluator, resume=resume,
        callbacks=[clock.callback()], quiet=True,
    )  # fmt: skip
    evals = [
        {"step": e.get("step"), **{k: v for k, v in e.items() if k.startswith("eval_valid")}}
        for e in summary["valid"]
    ]
    best = float(summary["best_metric"] or 0.0)
    return summary["best_step"], best, int(summary["global_step"]), evals


def _fit_arcface(
    train_queries: Sequence[Query],
    products: dict[str, Product],
    evaluator: MatchF1Evaluator,
    args: TextFitArgs,
    out: Path,
    clock: StepClock,
) -> tuple[int | None, float, int, list[dict[str, Any]]]:
    """ArcFace over the train titles, their groups the classes (``training.arcface_text``)."""
    from training.arcface_text import TextArcFaceArgs, fit_text_arcface
    from training.loop import newest_checkpoint

    ids = {q.id for q in train_queries} | {m for q in train_queries for m in q.matches}
    train = [products[i] for i in sorted(ids) if i in products]
    arc = TextArcFaceArgs(
        out=out,
        model=args.model,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_steps=int(args.warmup * args.max_steps),
        epochs=_epochs(len(train), args.batch_size, args.max_steps),
        max_steps=args.max_steps,
        save_steps=args.eval_steps,
        eval_steps=args.eval_steps,
        margin_warmup=args.eval_steps,  # a cold head with the full margin stalls
        patience=args.patience,
        select=METRIC.removeprefix("eval_"),  # the evaluator's key, as mnrl's is
        keep=1,
        seed=args.seed,
        progress=False,  # the caller's bar (StepClock) follows the steps
        resume=args.resume and newest_checkpoint(out) is not None,
    )
    result, best, _ = fit_text_arcface(train, [], arc, score=evaluator, on_step=clock.step)
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
    ) -> None:
        self.loss, self.max_steps, self.later = loss, max_steps, tuple(later)
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
            log.info("fine-tune text (%s): %.2f s/step measured, %d steps left at most",
                     self.loss, self.per_step, left)  # fmt: skip
            if self.announce is not None:
                self.announce(self.loss, left, self.per_step, self.later)
            if self.progress is not None:
                self._tick = self.progress(
                    f"fine-tune text, {self.loss} (≤{self.max_steps} steps, "
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
