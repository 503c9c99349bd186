"""The second level of a stacked ``pair-gbdt``: pair-gbdt's own probability and the
stacked rerankers' scores, blended by a logistic regression fitted on rows those
models never trained on (the valid split's candidates).

Why a second level and not one more LightGBM column: a cross-encoder trained on the
train split scores that split's candidates better than it will score new ones (on
Abt-Buy, recall@1 0.946 on train against 0.837 on test), so trees fitted on train rows
learn to trust it too much; with its list features (rank, gap to the list's best) they
fell from 0.934 to 0.905 test recall@1. Fitted on valid rows instead, a handful of
weights cannot overfit 10,000 pairs, and the gain held on valid and test alike (README,
Measured). Inputs per pair: ``logit(pair-gbdt)``, and for each stacked reranker its
``logit(score)`` and that logit's gap to the best one in the query's list. Scores stay
probabilities, so the match decision's thresholds still apply.

The weights are plain numbers in the model's JSON sidecar (``blend``); nothing is
unpickled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from rerank.base import sigmoid
from retrieval.errors import UsageError

EPS = 1e-6


def logit(values: Sequence[float] | np.ndarray, raw: bool = False) -> np.ndarray:
    """log(p / (1 - p)), clipped away from 0 and 1; ``raw`` scores (a reranker run with
    ``activation=none``) are kept as they are."""
    x = np.asarray(values, dtype=np.float64)
    if raw:
        return x
    p = np.clip(x, EPS, 1 - EPS)
    return np.log(p / (1 - p))


def is_raw(values: Sequence[float]) -> bool:
    """Whether scores are not probabilities (some fall outside [0, 1]). Decided once, on
    the rows the blend is fitted on, and stored with it: a query's few scores could all
    fall inside [0, 1] by chance."""
    x = np.asarray(values, dtype=np.float64)
    return bool(x.size and (np.nanmin(x) < 0.0 or np.nanmax(x) > 1.0))


def blend_inputs(
    base: Sequence[float],
    stacked: Sequence[Sequence[float]],
    runs: Sequence[tuple[int, int]],
    raw: Sequence[bool] = (),
) -> np.ndarray:
    """The blend's input matrix: one row per pair, ``runs`` are the ``(start, end)`` of
    each query's pairs (the gap features are taken within them); ``raw[i]``: the i-th
    stacked reranker's scores are logits already (default: probabilities)."""
    cols = [logit(base)]
    for i, scores in enumerate(stacked):
        z = logit(scores, raw=bool(raw[i]) if i < len(raw) else False)
        gap = np.zeros_like(z)
        for start, end in runs:
            if end > start:
                gap[start:end] = z[start:end].max() - z[start:end]
        cols += [z, gap]
    return np.column_stack(cols) if len(cols[0]) else np.zeros((0, len(cols)))


@dataclass
class Blend:
    """Logistic-regression weights over standardised inputs."""

    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    raw: list[bool] = field(default_factory=list)  # per stacked reranker: scores are logits

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, l2: float = 1.0, iters: int = 50) -> Blend:
        """Newton's method on the L2-penalised log loss (the intercept unpenalised)."""
        if not len(y) or y.min() == y.max():
            raise UsageError("stacking needs valid candidates of both kinds to fit its blend")
        mean, scale = x.mean(0), x.std(0)
        scale[scale == 0] = 1.0
        z = np.column_stack([np.ones(len(x)), (x - mean) / scale])
        w = np.zeros(z.shape[1])
        penalty = np.diag(np.r_[0.0, np.full(len(w) - 1, l2)])
        for _ in range(iters):
            p = 1.0 / (1.0 + np.exp(-(z @ w)))
            grad = z.T @ (p - y) + penalty @ w
            hess = (z * (p * (1 - p))[:, None]).T @ z + penalty
            step = np.linalg.solve(hess, grad)
            w -= step
            if np.abs(step).max() < 1e-9:
                break
        return cls(mean.tolist(), scale.tolist(), w[1:].tolist(), float(w[0]))

    def predict(self, x: np.ndarray) -> list[float]:
        """Probabilities of the rows of ``x``."""
        if not len(x):
            return []
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        return [sigmoid(float(v)) for v in z @ np.asarray(self.coef) + self.intercept]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], stacked: int) -> Blend:
        """Weights read from a sidecar; a wrong shape is one line."""
        try:
            blend = cls(
                [float(v) for v in data["mean"]],
                [float(v) for v in data["scale"]],
                [float(v) for v in data["coef"]],
                float(data["intercept"]),
                [bool(v) for v in data.get("raw", [])],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"bad stacking blend in the pair-gbdt sidecar: {exc}") from exc
        if len(blend.raw) not in (0, stacked) or not (
            len(blend.mean) == len(blend.scale) == len(blend.coef) == 1 + 2 * stacked
        ):
            raise UsageError(
                f"the pair-gbdt sidecar's blend has {len(blend.coef)} weights; "
                f"{1 + 2 * stacked} expected for {stacked} stacked reranker(s)"
            )
        return blend
