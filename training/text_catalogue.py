"""A text encoder fine-tuned on a catalogue's train groups, its step count chosen on valid.

What ``search eval --fine-tune text`` runs: in-batch negatives
(``training.text.train_text_biencoder``) over every same-group title pair of the train
split, evaluated every ``eval_steps`` steps by the match F1 of its cosine on the valid
split (``training.match_eval``), the best step kept, the run stopped once ``patience``
evaluations in a row bring no gain. The zero-shot model is scored first, so a run that
never beats it says so (and the caller keeps the zero-shot encoder). The valid and test
listings are never trained on: the rows come from the train split alone.

The step time is measured on the first steps and turned into an estimate of the whole
run (``announce``), and a progress bar follows the steps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrieval.errors import UsageError
from retrieval.types import Product, ProgressFactory, Query
from training.match_eval import MatchF1Evaluator
from training.text import TextBiencoderConfig, build_rows, train_text_biencoder

log = logging.getLogger(__name__)
PROBE_STEPS = 3  # steps timed before the estimate is made


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


@dataclass
class TextFitResult:
    """What the run chose: the best step and its valid F1, against the zero-shot F1."""

    best_step: int | None
    best_f1: float
    zero_shot_f1: float
    steps_run: int
    seconds: float
    step_seconds: float | None
    evals: list[dict[str, Any]] = field(default_factory=list)
    skipped: str = ""  # why nothing was trained ("" when trained)

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
    announce: Callable[[str], None] | None = None,
) -> TextFitResult:
    """Fine-tune ``args.model`` on the train queries' group pairs into ``args.out``."""
    from sentence_transformers import SentenceTransformer

    start = time.perf_counter()
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
    steps = StepClock(args.max_steps, progress, announce)
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
    summary = train_text_biencoder(
        rows,
        args.model,
        args.out,
        config,
        evaluator=evaluator,
        resume=args.resume,
        callbacks=[steps.callback()],
    )
    evals = [
        {"step": e.get("step"), **{k: v for k, v in e.items() if k.startswith("eval_valid")}}
        for e in summary["valid"]
    ]
    return TextFitResult(
        best_step=summary["best_step"],
        best_f1=float(summary["best_metric"] or 0.0),
        zero_shot_f1=float(zero),
        steps_run=int(summary["global_step"]),
        seconds=time.perf_counter() - start,
        step_seconds=steps.per_step,
        evals=evals,
    )


class StepClock:
    """Times the first steps, announces the estimate, then ticks a progress bar."""

    def __init__(
        self,
        max_steps: int,
        progress: ProgressFactory | None,
        announce: Callable[[str], None] | None,
    ) -> None:
        self.max_steps, self.progress, self.announce = max_steps, progress, announce
        self.per_step: float | None = None
        self._t0 = 0.0
        self._tick: Callable[[int], None] | None = None

    def step(self, global_step: int, done_before: int) -> None:
        """Called after each optimiser step (``done_before``: steps of a resumed run)."""
        ran = global_step - done_before
        if ran == 1:
            self._t0 = time.perf_counter()  # the first step carries the start-up
        elif ran == PROBE_STEPS + 1 and self.per_step is None:
            self.per_step = (time.perf_counter() - self._t0) / PROBE_STEPS
            left = self.max_steps - global_step
            message = (
                f"fine-tune text: {self.per_step:.2f} s/step measured; at most {left} more "
                f"steps = {left * self.per_step / 60:.0f} min plus evaluations (it stops "
                "sooner once the valid F1 stops improving)"
            )
            log.info(message)
            if self.announce is not None:
                self.announce(message)
            if self.progress is not None:
                self._tick = self.progress(
                    f"fine-tune text (≤{self.max_steps} steps, ~{self.per_step:.1f} s each)",
                    left,
                )
        elif self._tick is not None:
            self._tick(1)

    def callback(self) -> Any:
        """The TrainerCallback that drives ``step``."""
        from transformers import TrainerCallback

        clock = self

        class Clock(TrainerCallback):
            first: int | None = None

            def on_step_end(self, args, state, control, **kwargs):
                if self.first is None:
                    self.first = state.global_step - 1
                clock.step(state.global_step, self.first)
                return control

        return Clock()
