"""One rule's thresholds tuned on hand-made edges: the F1 it reports and its ticks."""

from __future__ import annotations

import pytest
from helpers.match_edges import E

from retrieval.metrics import match_scores
from search.match.rules import Rule, decide
from search.match.tuning.thresholds import score_rule, tune_rule


def test_tuned_rule_f1_is_the_metrics_function_on_the_decided_sets():
    targets = {0: {1}, 1: {0}, 2: {3}, 3: {2}, 4: set(), 5: set()}
    rule = tune_rule(E, Rule("u", {"text": 0.5, "sparse": 0.5}, "text", min2=0.1), 6, targets)
    sets = decide(E, rule, 6)
    want = match_scores({r: sets.get(r, ()) for r in targets}, targets, include_self=True)
    assert score_rule(E, rule, 6, targets) == want
    assert want.f1 == pytest.approx(1.0)  # the union finds 2~3, min2 stays off 4~5
    assert rule.notes["tune_f1"] == pytest.approx(1.0)


def test_tuning_ticks_once_per_f1_evaluated(monkeypatch):
    """The progress tick counts every F1 the tuner evaluates (one by one, so a slow
    agglomerative rule shows it is alive), and ticking changes nothing it chooses."""
    import search.match.tuning.thresholds as tune

    targets = {0: {1}, 1: {0}, 2: {3}, 3: {2}, 4: set(), 5: set()}
    tpl = Rule("u", {"text": 0.5, "sparse": 0.5}, "text", min2=0.1, groups="agglomerative")
    calls = {"n": 0}
    real = tune.score_rule

    def counted(*args):
        calls["n"] += 1
        return real(*args)

    monkeypatch.setattr(tune, "score_rule", counted)
    ticks: list[int] = []
    rule = tune_rule(E, tpl, 6, targets, tick=ticks.append)
    assert ticks and set(ticks) == {1}
    assert len(ticks) == calls["n"] - 1  # all but the closing tune_f1 score
    monkeypatch.setattr(tune, "score_rule", real)
    assert tune_rule(E, tpl, 6, targets) == rule
