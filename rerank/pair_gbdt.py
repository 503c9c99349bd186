"""The ``pair-gbdt`` reranker: LightGBM over features of (query, candidate) pairs.

Spec: ``pair-gbdt:MODEL.txt[,num_threads=N][,with=KIND:MODEL]`` (one thread by default,
0 lets OpenMP choose; ``with=`` stacks other rerankers: their scores and the
model's own probability are blended by weights fitted on valid, ``rerank.stack_blend``).
The model is a LightGBM text model with a JSON sidecar next to it (``MODEL.txt.json``,
``rerank.pair_sidecar``) that lists the feature columns in order, the feature version and how the model was
trained; a ranker's (``lambdarank``) sidecar also holds the ``calibration`` its raw
scores go through, so every pair-gbdt score is a probability. The columns are the
collection's per-vector similarities (``sim_<vector>``, filled by the pipeline from
the stored vectors; a vector the collection lacks is NaN) followed by
``rerank.pair_features.FEATURES``. Train one with ``search train reranker --kind
pair-gbdt DATASET --out MODEL.txt``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rerank.base import Pair, register_reranker, sigmoid
from rerank.pair_features import (
    FEATURE_VERSION,
    FEATURES,
    SIM_PREFIX,
    STACK_PREFIX,
    list_features,
    pair_features,
)
from rerank.pair_sidecar import PairSidecar, calibration, sidecar_path
from rerank.stack_blend import Blend, blend_inputs
from retrieval.atomic import read_checked, write_checked, write_text
from retrieval.errors import MissingExtraError, UsageError
from retrieval.registry import int_option
from retrieval.validation import read_json, validated

log = logging.getLogger(__name__)

TRAIN_HINT = "train one with `search train reranker --kind pair-gbdt DATASET --out MODEL.txt`"

__all__ = ["FEATURES", "PairGbdtModel", "PairGbdtReranker", "feature_rows", "pair_features"]


def import_lightgbm() -> Any:
    """The lightgbm module, or the error naming the extra that brings it."""
    try:
        import lightgbm
    except ImportError as exc:
        raise MissingExtraError("gbdt", "lightgbm") from exc
    return lightgbm


PARALLEL_ROWS = 20_000  # predicts over fewer rows run on one thread: threads cost more


def predict_threads(work: int) -> int:
    """Threads for one LightGBM predict of ``work`` rows' worth (a TreeSHAP row counts
    as several): every core this process may use for a catalogue's edges, one below
    ``PARALLEL_ROWS``. Rows are predicted independently, so the numbers are the same to
    the bit whatever the count."""
    if work < PARALLEL_ROWS:
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def query_runs(pairs: Sequence[Pair]) -> list[tuple[int, int]]:
    """``(start, end)`` of each query's run of consecutive pairs (the order
    ``rerank_batch`` and the trainer pass them in)."""
    runs, start = [], 0
    for i in range(1, len(pairs) + 1):
        if i == len(pairs) or pairs[i][0] is not pairs[start][0]:
            runs.append((start, i))
            start = i
    return runs


def feature_rows(pairs: Sequence[Pair]) -> list[dict[str, float]]:
    """Features of every pair; list features are computed within each query's run."""
    rows = [pair_features(q, c) for q, c in pairs]
    for start, end in query_runs(pairs):
        query = pairs[start][0].title or ""
        titles = [c.product.title or "" for _, c in pairs[start:end]]
        list_features(rows[start:end], query, titles)
    return rows


@dataclass
class PairGbdtModel:
    """A LightGBM booster and the ordered feature columns it reads."""

    booster: Any
    features: list[str]
    info: dict[str, Any] = field(default_factory=dict)
    num_threads: int = 1  # small batches: threads cost more than they save

    @property
    def sim_features(self) -> list[str]:
        return [f for f in self.features if f.startswith(SIM_PREFIX)]

    def matrix(self, rows: Sequence[dict[str, float]]) -> Any:
        """Rows of feature dicts as a float matrix in the model's column order (NaN where absent)."""
        return np.array(
            [[r.get(f, math.nan) for f in self.features] for r in rows], dtype=np.float64
        ).reshape(len(rows), len(self.features))

    def predict(self, rows: Sequence[dict[str, float]]) -> list[float]:
        """One score per feature row (higher: more likely the same product): the
        booster's probability, or a ranker's raw score through its ``calibration``."""
        if not rows:
            return []
        scores = self.booster.predict(self.matrix(rows), num_threads=self.num_threads)
        scaling = calibration(self.info)
        if scaling is None:
            return [float(s) for s in scores]
        slope, intercept = scaling
        return [sigmoid(slope * float(s) + intercept) for s in scores]

    def save(self, path: str | Path) -> Path:
        """Write the LightGBM text model and its JSON sidecar, each whole or not at all
        (the model first: a sidecar never names a file that is not there); the sidecar
        records the model's sha256 and size, which ``load`` checks before LightGBM reads it.
        Returns the model path."""
        path = Path(path)
        record = write_checked(path, self.booster.model_to_string())
        meta = {
            "features": self.features,
            "feature_version": FEATURE_VERSION,
            **self.info,
            "model_file": record,
        }
        write_text(sidecar_path(path), json.dumps(meta, indent=2, default=str))
        return path

    @classmethod
    def load(cls, path: str | Path, num_threads: int = 1) -> PairGbdtModel:
        """Read a model and its sidecar; a missing file or a feature list this version
        does not compute is a one-line error with the fix."""
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"pair-gbdt model not found: {path}; {TRAIN_HINT}")
        side = sidecar_path(path)
        if not side.is_file():
            raise UsageError(f"pair-gbdt model {path} has no sidecar {side.name}; {TRAIN_HINT}")
        meta = read_json(side, "pair-gbdt sidecar")
        if not isinstance(meta, dict):
            raise UsageError(f"bad pair-gbdt sidecar {side}: not a JSON object; {TRAIN_HINT}")
        validated(PairSidecar, meta, side)
        features = list(meta.pop("features", []))
        version = meta.pop("feature_version", None)
        own = [f for f in features if not f.startswith((SIM_PREFIX, STACK_PREFIX))]
        if version != FEATURE_VERSION or own != list(FEATURES):
            raise UsageError(
                f"pair-gbdt model {path} was trained on other features "
                f"(version {version}: {', '.join(own)}); this version computes "
                f"(version {FEATURE_VERSION}: {', '.join(FEATURES)}); {TRAIN_HINT}"
            )
        # a truncated or edited model crashes LightGBM natively (segfault, abort, a loop):
        # only the bytes the sidecar recorded reach it
        text = read_checked(path, meta.pop("model_file", None), TRAIN_HINT).decode("utf-8")
        lgb = import_lightgbm()
        try:
            booster = lgb.Booster(model_str=text)
        except lgb.basic.LightGBMError as exc:
            raise UsageError(f"cannot read pair-gbdt model {path}: {exc}") from exc
        if booster.feature_name() != features:
            raise UsageError(
                f"pair-gbdt model {path} and its sidecar list different features; {TRAIN_HINT}"
            )
        return cls(booster, features, meta, num_threads)


class PairGbdtReranker:
    """Scores pairs with a trained ``PairGbdtModel``; asks the pipeline for ``sim_*``."""

    needs_features = True

    def __init__(
        self, model: PairGbdtModel, spec: str = "pair-gbdt", stacked: Sequence[Any] = ()
    ) -> None:
        from rerank.stacking import check_stack

        check_stack(model.info.get("stacked", []), stacked, spec.split(",", 1)[0])
        self.model = model
        self.spec = spec
        self.stacked = list(stacked)
        blend = model.info.get("blend")
        self.blend = Blend.from_json(blend, len(self.stacked)) if blend else None
        self._checked = False

    def check_vectors(self, rows: Sequence[dict[str, float]]) -> None:
        """Refuse candidates whose similarities share no vector with the model's; warn
        once when only some of the model's vectors are there (those columns are NaN)."""
        wanted = self.model.sim_features
        if not wanted or not rows:
            return
        have = sorted({k for r in rows for k in r if k.startswith(SIM_PREFIX)})
        missing = [f for f in wanted if f not in have]
        if len(missing) == len(wanted):
            names = ", ".join(f[len(SIM_PREFIX) :] for f in wanted)
            got = ", ".join(f[len(SIM_PREFIX) :] for f in have) or "none"
            raise UsageError(
                f"{self.spec} was trained on the vectors {names}; these candidates have {got}. "
                f"Use a collection with those vectors, or {TRAIN_HINT}"
            )
        if missing and not self._checked:
            log.warning("%s: no %s on these candidates; scored as missing", self.spec, missing)
        self._checked = True

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        """One score per pair, in order."""
        rows = feature_rows(pairs)
        self.check_vectors(rows)
        stack: dict[str, list[float]] = {}
        if self.stacked and pairs:
            from rerank.stacking import stack_scores

            stack = stack_scores(self.stacked, pairs)
            for column, scores in stack.items():  # columns of a model that reads them
                for row, score in zip(rows, scores):
                    row[column] = score
        base = self.model.predict(rows)
        if self.blend is None or not pairs:
            return base
        columns = [stack[s.column] for s in self.stacked]
        return self.blend.predict(blend_inputs(base, columns, query_runs(pairs), self.blend.raw))


@register_reranker("pair-gbdt")
def _factory(
    model: str | None = None, num_threads: str | int = 1, **options: str
) -> PairGbdtReranker:
    from rerank.stacking import build_stack, parse_with

    stack = options.pop("with", None)
    if options:
        raise UsageError(
            f"unknown pair-gbdt option(s): {', '.join(sorted(options))}; known: num_threads, with"
        )
    if not model:
        raise UsageError(f"pair-gbdt needs a model file: pair-gbdt:MODEL.txt; {TRAIN_HINT}")
    threads = int_option("num_threads", num_threads, default=1, minimum=0)
    loaded = PairGbdtModel.load(model, threads)
    return PairGbdtReranker(loaded, f"pair-gbdt:{model}", build_stack(parse_with(stack)))
