"""Fit the ``pair-gbdt`` reranker: LightGBM on features of stage-1 candidate pairs.

Input is a list of examples ``(query, candidates, labels)``: one query listing, its
stage-1 candidates (with ``sim_*`` features filled by the pipeline) and a 0/1 label
per candidate. Two objectives:

* ``lambdarank`` (default): pairs are ordered within their query; early stopping
  watches the valid NDCG@``eval_at``. Its raw scores are not comparable across queries,
  so a Platt scaling (one slope and intercept, ``calibration`` in the sidecar) fitted on
  the valid pairs (the train pairs when valid has none of one kind) turns them into
  probabilities: one threshold can still decide matches, and the stacking blend still
  reads a probability. The scaling is increasing, so the order within a list is the
  ranker's.
* ``binary``: each pair is classified on its own; early stopping watches the valid
  logloss; scores are probabilities as they come.

Measured on the hybrid stage 1 with the version-2 features (README, Measured; three
seeds, valid chose): on wdc-products' 1,250 valid queries lambdarank put the match first
for 0.718 against binary's 0.683 (test 0.709 against 0.688); on Abt-Buy's 205, 0.953
against 0.945. One thread is the default: a few hundred thousand pairs fit in seconds,
and OpenMP threads on a busy machine slow LightGBM down many times over.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from rerank.pair_features import FEATURES, SIM_PREFIX, STACK_PREFIX
from rerank.pair_gbdt import PairGbdtModel, feature_rows, import_lightgbm, query_runs
from rerank.stack_blend import Blend, blend_inputs, is_raw
from retrieval.errors import UsageError
from retrieval.types import Candidate, Product

log = logging.getLogger(__name__)

Example = tuple[Product, Sequence[Candidate], Sequence[int]]
OBJECTIVES = ("lambdarank", "binary")
DEFAULT_OBJECTIVE = OBJECTIVES[0]


@dataclass
class GbdtParams:
    """LightGBM settings of one fit; the defaults suit a few thousand queries."""

    objective: str = DEFAULT_OBJECTIVE
    num_leaves: int = 15
    learning_rate: float = 0.05
    num_boost_round: int = 1000
    early_stopping_rounds: int = 50
    min_data_in_leaf: int = 20
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    lambda_l2: float = 1.0
    eval_at: int = 10
    seed: int = 0
    num_threads: int = 1

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise UsageError(
                f"unknown pair-gbdt objective {self.objective!r}; known: {', '.join(OBJECTIVES)}"
            )

    def lightgbm(self) -> dict[str, Any]:
        """The parameter dict LightGBM reads."""
        return {
            "objective": self.objective,
            "metric": ["binary_logloss", "ndcg"] if self.objective == "binary" else ["ndcg"],
            "eval_at": [self.eval_at],
            "num_leaves": self.num_leaves,
            "learning_rate": self.learning_rate,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": 1 if self.bagging_fraction < 1 else 0,
            "lambda_l2": self.lambda_l2,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": self.num_threads,
            "verbose": -1,
        }


def feature_columns(examples: Sequence[Example]) -> list[str]:
    """The model's columns: every ``sim_*`` feature the candidates carry, the stacked
    rerankers' ``stack*`` scores, then ``FEATURES``."""
    keys = {k for _, cands, _ in examples for c in cands for k in c.features}
    sims = sorted(k for k in keys if k.startswith(SIM_PREFIX))
    return sims + sorted(k for k in keys if k.startswith(STACK_PREFIX)) + list(FEATURES)


def build_matrix(
    examples: Sequence[Example], columns: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Feature matrix, labels and query group sizes of the examples with candidates."""
    pairs, labels, groups = [], [], []
    for query, cands, labs in examples:
        if len(cands) != len(labs):
            raise ValueError(f"query {query.id}: {len(cands)} candidates, {len(labs)} labels")
        if not cands:
            continue
        pairs.extend((query, c) for c in cands)
        labels.extend(int(v) for v in labs)
        groups.append(len(cands))
    model = PairGbdtModel(None, list(columns))
    return model.matrix(feature_rows(pairs)), np.asarray(labels, dtype=np.float64), groups


def fit_pair_gbdt(
    train: Sequence[Example],
    valid: Sequence[Example] | None = None,
    params: GbdtParams | None = None,
    info: dict[str, Any] | None = None,
) -> PairGbdtModel:
    """Fit a booster on the training examples, stopping early on the valid ones; the
    returned model carries the columns and the training facts for its sidecar."""
    lgb = import_lightgbm()
    params = params or GbdtParams()
    columns = feature_columns(train)
    x, y, groups = build_matrix(train, columns)
    if not len(y) or y.min() == y.max():
        raise UsageError(
            "pair-gbdt training needs candidates of both kinds: "
            f"{int(y.sum())} matching and {int(len(y) - y.sum())} non-matching pairs found"
        )
    data = lgb.Dataset(x, y, group=groups, feature_name=columns, free_raw_data=False)
    sets, callbacks = [], [lgb.log_evaluation(0)]
    vy = np.zeros(0)
    if valid:
        vx, vy, vgroups = build_matrix(valid, columns)
    if len(vy):
        sets.append(lgb.Dataset(vx, vy, group=vgroups, reference=data))
        callbacks.append(
            lgb.early_stopping(params.early_stopping_rounds, first_metric_only=True, verbose=False)
        )
    else:
        log.warning(
            "pair-gbdt: no valid candidates; %d rounds, no early stopping", params.num_boost_round
        )
    booster = lgb.train(
        params.lightgbm(),
        data,
        num_boost_round=params.num_boost_round,
        valid_sets=sets,
        valid_names=["valid"][: len(sets)],
        callbacks=callbacks,
    )
    scores = {k: round(float(v), 5) for k, v in booster.best_score.get("valid", {}).items()}
    best = booster.best_iteration or booster.current_iteration()
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
    if params.objective != "binary":
        rows = ([(vx, vy, "valid")] if len(vy) else []) + [(x, y, "train")]
        info = {**(info or {}), "calibration": platt_scaling(booster, rows)}
    facts = {
        "params": asdict(params),
        "best_iteration": best,
        "train_queries": len(groups),
        "train_pairs": int(len(y)),
        "train_positives": int(y.sum()),
        "valid_scores": scores,
        **(info or {}),
    }
    log.info("pair-gbdt: %d trees on %d pairs; valid %s", best, len(y), scores)
    return PairGbdtModel(booster, columns, facts)


def platt_scaling(
    booster: Any, rows: Sequence[tuple[np.ndarray, np.ndarray, str]]
) -> dict[str, Any]:
    """Slope and intercept of ``sigmoid(slope * raw + intercept)`` fitted to the labels of
    the first of ``rows`` (features, labels, name) that holds both kinds: valid, else the
    train rows the trees learned from (said in a warning; ``fit_pair_gbdt`` has checked
    they hold both). The slope is kept positive so the order stays the ranker's."""
    x, y, name = next(r for r in rows if len(r[1]) and r[1].min() != r[1].max())
    raw = np.asarray(booster.predict(x), dtype=np.float64)
    fit = Blend.fit(raw[:, None], y)
    slope = max(fit.coef[0] / fit.scale[0], 1e-6)
    intercept = fit.intercept - slope * fit.mean[0]
    if name == "train":
        log.warning("pair-gbdt: no valid pairs of both kinds; scores calibrated on train pairs")
    return {"slope": slope, "intercept": intercept, "fitted_on": name, "pairs": int(len(y))}


def label_candidates(matches: Sequence[str], cands: Sequence[Candidate]) -> list[int]:
    """1 for candidates among the query's matches, else 0."""
    wanted = set(matches)
    return [int(c.id in wanted) for c in cands]


BlendRows = tuple[np.ndarray, np.ndarray, list[bool]]


def blend_rows(model: PairGbdtModel, columns: Sequence[str], valid: Sequence[Example]) -> BlendRows:
    """The blend's inputs and labels over every valid pair, and per stacked column
    whether its scores are logits already."""
    pairs = [(q, c) for q, cands, _ in valid for c in cands]
    labels = np.asarray([int(v) for _, _, labs in valid for v in labs], dtype=np.float64)
    if not pairs:
        raise UsageError("stacking fits its blend on the valid split: it has no candidates")
    base = model.predict(feature_rows(pairs))
    stacked = [[c.features[col] for _, c in pairs] for col in columns]
    raw = [is_raw(col) for col in stacked]
    return blend_inputs(base, stacked, query_runs(pairs), raw), labels, raw


def fit_blend(
    model: PairGbdtModel,
    columns: Sequence[str],
    valid: Sequence[Example],
    rows: BlendRows | None = None,
) -> Blend:
    """Fit the stacking blend (``rerank.stack_blend``) on the valid examples, whose candidates
    carry the stacked rerankers' scores in ``columns``; stored in the model's sidecar.
    ``rows``: ``blend_rows`` of the same arguments, when the caller has them already."""
    x, labels, raw = rows or blend_rows(model, columns, valid)
    blend = Blend.fit(x, labels)
    blend.raw = raw
    model.info["blend"] = blend.to_json()
    log.info("stacking blend on %d valid pairs: %s", len(labels), blend.coef)
    return blend


def blend_out_of_fold(
    model: PairGbdtModel,
    columns: Sequence[str],
    valid: Sequence[Example],
    folds: int = 5,
    rows: BlendRows | None = None,
) -> list[float] | None:
    """Each valid pair's blend probability from a blend fitted without its query's fold
    (queries dealt round-robin into ``folds``), so the stack's valid figures are not
    measured on the rows its weights were fitted on. None when a fold cannot be fitted
    (fewer queries than folds, or a fold's rest holds one label only)."""
    if len(valid) < folds:
        return None
    x, labels, _ = rows or blend_rows(model, columns, valid)
    fold = np.repeat(np.arange(len(valid)) % folds, [len(cands) for _, cands, _ in valid])
    out = np.zeros(len(labels))
    for f in range(folds):
        held = fold == f
        try:
            out[held] = Blend.fit(x[~held], labels[~held]).predict(x[held])
        except UsageError:
            return None
    return out.tolist()
