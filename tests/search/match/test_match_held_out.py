"""``search match`` with the matcher ``search eval`` tuned against the catalogue: on the
split the eval scored, the same listings get the same decisions, so the same F1 to the
last digit; the whole catalogue's F1 is another population (the train and tuning splits
too), and the match line says which figure compares with the eval's."""

from __future__ import annotations

from dataclasses import replace

import pytest

from search.evaluation.evaluate import evaluate_dataset
from search.match.job import match_dataset
from search.match.matcher import Matcher


def test_match_reports_the_eval_split_as_the_eval_did(indexed, sparse_cfg, tmp_path):
    cfg = replace(sparse_cfg, eval=replace(sparse_cfg.eval, match_against="catalogue"))
    ev = evaluate_dataset(cfg, str(indexed), collection="shop", out=tmp_path / "eval")
    matcher = Matcher.load(ev.out / "matcher.json")
    assert matcher.info["scored_on"] == "test" and matcher.info["tuned_on"] == "valid"
    res = match_dataset(
        sparse_cfg,
        str(indexed),
        matcher_path=ev.out / "matcher.json",
        collection="shop",
        out=tmp_path / "match",
    )
    assert res.split_scores["test"].f1 == pytest.approx(ev.metrics["stage1/f1"], abs=1e-9)
    assert res.eval_split == ("test", pytest.approx(ev.metrics["stage1/f1"], abs=1e-6))
    line = res.score_line()
    assert line is not None and line.startswith(
        f"Shopee F1 on test {ev.metrics['stage1/f1']:.4f} (held out; search eval reported "
    )
    assert "valid " in line and "(tuned on)" in line
    assert line.endswith(f"over all {res.scores.n} labelled listings {res.scores.f1:.4f}")


def test_without_an_eval_split_the_line_is_per_split_and_whole(indexed, sparse_cfg, tmp_path):
    from search.match.job import RuleFlags

    res = match_dataset(
        sparse_cfg,
        str(indexed),
        flags=RuleFlags({"sparse": 0.7}),
        collection="shop",
        out=tmp_path / "m",
    )
    line = res.score_line()
    assert res.eval_split is None and line is not None and "held out" not in line
    for name, scores in res.split_scores.items():
        assert f"{name} {scores.f1:.4f}" in line
