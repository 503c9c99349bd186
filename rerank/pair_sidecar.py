"""What a ``pair-gbdt`` model's JSON sidecar (``MODEL.txt.json``) holds: where it lives
beside the model, its schema (the feature columns, the model file's record, the training
facts; the numbers a score goes through, a ranker's calibration and the stacking blend,
typed and finite), and the calibration read from it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from retrieval.validation import Strict


def sidecar_path(path: str | Path) -> Path:
    """Where the JSON sidecar of a model file lives: ``model.txt`` -> ``model.txt.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


class StackedFile(Strict):
    """A stacked reranker as the sidecar records it (``rerank.stacking.Stacked``)."""

    spec: str
    kind: str
    fingerprint: str


class BlendFile(Strict):
    """The stacking blend's weights (``rerank.stack_blend.Blend``)."""

    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    raw: list[bool] = Field(default_factory=list)


class PairSidecar(Strict):
    """``MODEL.txt.json``: the columns, the model file's record, and the training facts;
    the numbers a score goes through (calibration, blend) typed and finite."""

    features: list[str] = Field(min_length=1)
    feature_version: int
    model_file: dict[str, Any] | None = None  # checked by read_checked, with the rebuild hint
    calibration: dict[str, Any] | None = None
    stacked: list[StackedFile] = Field(default_factory=list)
    blend: BlendFile | None = None
    # what the trainer reports: informational, typed loosely
    params: dict[str, Any] = Field(default_factory=dict)
    best_iteration: int | None = None
    train_queries: int | None = None
    train_pairs: int | None = None
    train_positives: int | None = None
    valid_scores: dict[str, Any] = Field(default_factory=dict)
    dataset: str | None = None
    collection: str | None = None
    vector: str | None = None
    k: int | None = None
    split: str | None = None
    stack_queries: int | None = None
    valid_metrics: str | None = None

    @field_validator("calibration")
    @classmethod
    def _calibration(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        try:
            calibration({"calibration": value})
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"bad calibration ({exc})") from None
        return value

    @model_validator(mode="after")
    def _blend_shape(self) -> PairSidecar:
        b, n = self.blend, len(self.stacked)
        if b is not None and (
            len(b.raw) not in (0, n) or not len(b.mean) == len(b.scale) == len(b.coef) == 1 + 2 * n
        ):
            raise ValueError(
                f"the blend has {len(b.coef)} weights; {1 + 2 * n} expected for {n} stacked "
                "reranker(s)"
            )
        return self


def calibration(info: dict[str, Any]) -> tuple[float, float] | None:
    """The (slope, intercept) a ranker's scores go through, from the sidecar facts; None
    for a binary model, whose scores are probabilities already."""
    scaling = info.get("calibration")
    if scaling is None:
        return None
    slope, intercept = float(scaling["slope"]), float(scaling["intercept"])
    if not (math.isfinite(slope) and math.isfinite(intercept) and slope > 0):
        raise ValueError(f"slope {slope}, intercept {intercept}")
    return slope, intercept
