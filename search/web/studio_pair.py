"""Why one pair of a match run scored as it did: for a pair-model edge, the waterfall of
its feature contributions (LightGBM ``pred_contrib`` in logit space: the bias, then each
kept feature, largest first, the others (``rest``) as one step, ending at the edge's
logit); for a stage-1 rule, the vector, its threshold and the margin; and every
score the run read beside its threshold.
"""

from __future__ import annotations

import math
from typing import Any

from search.web.studio_data import Edge, number, numbers

OTHER = "other features"
TOLERANCE = 1e-9  # a remainder smaller than this is float noise, not a step


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def waterfall(contrib: dict[str, float]) -> dict[str, Any]:
    """Steps ``{name, value, start, end}`` from 0 through the bias and each feature to the
    logit; the contributions of features not kept are one ``other features`` step."""
    features = dict(contrib)
    bias = features.pop("bias", 0.0)
    logit = features.pop("logit", None)
    rest = features.pop("rest", 0.0)  # the features outside the kept top ones, summed
    steps = [{"name": "bias", "value": bias, "start": 0.0, "end": bias}]
    at = bias
    for name, value in sorted(features.items(), key=lambda kv: (-abs(kv[1]), kv[0])):
        steps.append({"name": name, "value": value, "start": at, "end": at + value})
        at += value
    if logit is None:
        logit = at + rest
    rest = logit - at  # what the kept steps leave to reach the logit
    if abs(rest) > TOLERANCE:
        steps.append({"name": OTHER, "value": rest, "start": at, "end": logit})
    return {"steps": steps, "logit": logit, "probability": sigmoid(logit)}


def explain(edge: Edge, meta: dict[str, Any]) -> dict[str, Any]:
    """The explain view's data for one edge of a run with ``meta`` (its run.json)."""
    thresholds = numbers(meta.get("thresholds"))
    scores = numbers(edge.scores)
    out: dict[str, Any] = {
        "a": edge.a,
        "b": edge.b,
        "score": edge.score,
        "primary": meta.get("primary"),
        "threshold": number(meta.get("threshold")),
        "matched": edge.matched,
        "rule": edge.rule,
        "checks": [
            {
                "score": name,
                "value": value,
                "threshold": thresholds.get(name),
                "passes": name in thresholds and value >= thresholds[name],
            }
            for name, value in sorted(scores.items())
        ],
    }
    contrib = numbers(edge.contrib)
    if contrib:
        out["waterfall"] = waterfall(contrib)
    rule = edge.rule
    if rule not in (None, "pair") and rule in thresholds and rule in scores:
        margin = edge.margin
        if margin is None:
            margin = scores[rule] - thresholds[rule]
        out["stage1"] = {
            "vector": rule,
            "score": scores[rule],
            "threshold": thresholds[rule],
            "margin": margin,
        }
    return out
