"""The ``[fine_tune]`` section of the config (``search eval --fine-tune``): which encoders
are fine-tuned on the catalogue's train groups, with which text loss and mined negatives,
and the image run's own schedule. The step schedule itself (``eval_steps``, ``patience``,
``max_steps``, ``batch_size``, ``lr``, ``seed``, ``resume``) is ``training.catalogue_fit``'s
``FitSteps``, which the trainers read too."""

from __future__ import annotations

from dataclasses import dataclass, field

from retrieval.checks import MAX_COUNT, check_range
from retrieval.errors import UsageError
from training.catalogue_fit import FitSteps

__all__ = ["FINE_TUNABLE", "FINE_TUNE_LOSSES", "FineTuneConfig"]

FINE_TUNABLE = ("text", "image")
FINE_TUNE_LOSSES = ("mnrl", "arcface", "best")  # training.text_catalogue.LOSS_CHOICES


@dataclass
class FineTuneConfig(FitSteps):
    """``search eval --fine-tune``: encoders fine-tuned on the train split's groups before
    the matcher is tuned (``search.evaluation.fine_tune``); the step count is chosen on
    valid, evaluated every ``eval_steps`` and stopped after ``patience`` evaluations
    without a gain, at most ``max_steps`` (``training.catalogue_fit.FitSteps``: those
    settings, ``batch_size``, ``lr``, ``seed`` and ``resume``, with their defaults; resume
    goes on from the run folder's finished phases and checkpoints); ``loss`` ``best``
    trains in-batch negatives and ArcFace and keeps the better on valid."""

    encoders: list[str] = field(default_factory=list)  # "text", "image"; empty: none
    model: str | None = None  # start model; None: the model of the `text` encoder
    # the text loss: in-batch negatives, ArcFace, or both, the better on valid kept
    loss: str = "best"
    # in-batch negatives: mined negatives per title pair (the train titles of other groups
    # the start model ranks nearest; 0: in-batch negatives alone)
    hard_negatives: int = 0
    # image (timm ArcFace): the start model (None: the `timm` encoder of the encoder list)
    # and its schedule (lr and freeze: the grocery-packages ArcFace recipe of docs/training.md;
    # docs/fine-tune.md); batch_size, patience and seed are shared with text
    image_model: str | None = None
    image_lr: float = 3e-4
    image_freeze: float = 0.75  # fraction of the backbone's tensors kept fixed
    image_eval_steps: int = 20
    image_max_steps: int = 200
    # a BN-dropout-FC neck of this many dims on the backbone, trained from scratch (the
    # Shopee winners' neck); 0: none, the embedding is the backbone's pooled vector
    image_neck: int = 0

    def __post_init__(self) -> None:
        if self.loss not in FINE_TUNE_LOSSES:
            raise UsageError(
                f"fine_tune.loss {self.loss!r} is unknown; known: " + ", ".join(FINE_TUNE_LOSSES)
            )
        unknown = [e for e in self.encoders if e not in FINE_TUNABLE]
        if unknown:
            raise UsageError(
                f"cannot fine-tune {', '.join(map(repr, unknown))}; known: "
                + ", ".join(FINE_TUNABLE)
            )
        check_range("fine_tune.batch_size", self.batch_size, 2, 4096)
        check_range("fine_tune.hard_negatives", self.hard_negatives, 0, 16)
        check_range("fine_tune.lr", self.lr, 1e-8, 1.0)
        check_range("fine_tune.eval_steps", self.eval_steps, 1, MAX_COUNT)
        check_range("fine_tune.patience", self.patience, 0, 1000)
        check_range("fine_tune.max_steps", self.max_steps, 1, MAX_COUNT)
        check_range("fine_tune.image_lr", self.image_lr, 1e-8, 1.0)
        check_range("fine_tune.image_freeze", self.image_freeze, 0.0, 0.99)
        check_range("fine_tune.image_eval_steps", self.image_eval_steps, 1, MAX_COUNT)
        check_range("fine_tune.image_max_steps", self.image_max_steps, 1, MAX_COUNT)
        check_range("fine_tune.image_neck", self.image_neck, 0, 65536)
