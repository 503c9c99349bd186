"""Epoch choice on valid: the kept epoch, the table with stage 1's row, and the one-line
verdict when the kept epoch does not beat stage 1's order of the same lists."""

from __future__ import annotations

import json
import math

import pytest

from training.ranking import STAGE1_WEIGHTS, ValidList, choose_stage1_weight, lean_on_stage1
from training.selection import BEST, TABLE, EpochChoice

# Two valid queries; stage 1 puts the match first in one and second in the other.
LISTS = [
    ValidList("a", ("a1", "x"), (1, 0)),
    ValidList("b", ("y", "b1"), (0, 1)),
]


def run(tmp_path, epochs):
    """An EpochChoice fed one scoring per epoch; returns it and the saved epochs."""
    saved: list[int] = []
    scores = iter(epochs)
    choice = EpochChoice(LISTS, tmp_path, lambda lists: next(scores), lambda out: saved.append(1))
    for n in range(len(epochs)):
        choice.epoch_end(n + 1, 10 * (n + 1))
    return choice, saved


def test_stage1_row_and_a_reranker_that_beats_it(tmp_path):
    right = [[1.0, 0.0], [0.0, 1.0]]  # both matches first
    wrong = [[0.0, 1.0], [1.0, 0.0]]  # both matches second
    choice, saved = run(tmp_path, [wrong, right])
    assert choice.stage1 == {"hit@1": 0.5, "mrr@10": 0.75}
    assert choice.best()["epoch"] == 2 and len(saved) == 2 and "stage1" not in choice.best()
    table = (tmp_path / TABLE).read_text().splitlines()
    assert table[2] == "| stage 1 | | 0.500 | 0.750 | |"
    assert table[3].startswith("| 1 | 10 | 0.000") and table[4].endswith("| yes |")
    assert json.loads((tmp_path / BEST).read_text())["stage1"] == choice.stage1
    assert choice.verdict() == ""


def test_a_reranker_no_better_than_stage1_is_said(tmp_path):
    same = [[1.0, 0.0], [1.0, 0.0]]  # the first candidate of each list: stage 1's order
    choice, _ = run(tmp_path, [same])
    assert choice.best()["hit@1"] == 0.5
    assert "no better than stage 1 (hit@1 0.500 vs 0.500" in choice.verdict()


def test_without_valid_lists_nothing_is_chosen_or_said(tmp_path):
    choice = EpochChoice([], tmp_path, lambda lists: [], lambda out: None)
    assert not choice.epoch_end(1, 10) and not choice.chose
    assert choice.stage1 == {} and choice.verdict() == ""


def test_stage1_weight_is_chosen_on_the_kept_epoch(tmp_path):
    """The model alone puts the match second in one list (by a hair) where stage 1 had it
    first: a weight on stage 1's rank mends that without breaking the other list, and the
    smallest such weight is kept; the table and best.json record every weight."""
    close = [[1.0, 0.0], [0.9, 1.0]]  # list 2: stage 1 had "y" first; the model has b1 first
    hair = [[0.99, 1.0], [0.0, 1.0]]  # list 1: the model prefers "x" over a1 by 0.01
    choice, _ = run(tmp_path, [close])
    assert choice.choose_stage1_weight(lambda: pytest.fail("scores are in memory")) == 0.0
    assert choice.verdict() == ""  # 1.0 hit@1 against stage 1's 0.5

    choice, _ = run(tmp_path / "b", [hair])
    weight = choice.choose_stage1_weight(lambda: pytest.fail("scores are in memory"))
    assert weight == 0.25  # 0.99 - 0.25 * log2(2) vs 1.0 - 0.25 * log2(3): a1 first again
    assert choice.best()["with_stage1"] == {"hit@1": 1.0, "mrr@10": 1.0}
    assert choice.best()["hit@1"] == 0.5  # the model alone, as the epoch table says
    saved = json.loads((tmp_path / "b" / BEST).read_text())
    assert saved["stage1_weight"] == 0.25 and len(saved["stage1_weights"]) == len(STAGE1_WEIGHTS)
    assert "| 0.25 | 1.000 | 1.000 | yes |" in (tmp_path / "b" / TABLE).read_text()


def test_a_resumed_choice_rescores_the_kept_model(tmp_path):
    """A run resumed after its best epoch has no kept scores in memory: the kept model
    scores valid again (``rescore``)."""
    run(tmp_path, [[[0.99, 1.0], [0.0, 1.0]]])
    resumed = EpochChoice(LISTS, tmp_path, lambda lists: [], lambda out: None, resume=True)
    assert resumed.chose and resumed.kept_scores is None
    assert resumed.choose_stage1_weight(lambda: [[0.99, 1.0], [0.0, 1.0]]) == 0.25


def test_weights_tie_to_the_smaller_and_shift_scores_by_rank():
    scores = [[0.0, 0.0], [0.0, 0.0]]  # the model has no opinion: stage 1's order
    assert lean_on_stage1(LISTS, scores, 1.0) == [[-1.0, -math.log2(3)]] * 2
    weight, rows = choose_stage1_weight(LISTS, scores)
    assert weight == 0.0 and [r["stage1_weight"] for r in rows] == sorted(STAGE1_WEIGHTS)


def test_a_weight_that_gains_mrr_alone_is_not_taken():
    """The model alone puts both matches first bar one third place that stage 1's rank
    lifts to second: MRR@10 rises, hit@1 does not, so the model alone (0) is kept."""
    lists = [
        ValidList("a", ("a1", "x"), (1, 0)),
        ValidList("c", ("c1", "y", "z"), (1, 0, 0)),
        ValidList("d", ("p", "d1", "q"), (0, 1, 0)),
    ]
    scores = [[1.0, 0.0], [1.0, 0.0, 0.0], [0.3, 0.0, 0.5]]  # d1 third alone, first for none
    weight, rows = choose_stage1_weight(lists, scores)
    assert max(r["mrr@10"] for r in rows) > rows[0]["mrr@10"]  # w >= 2: d1 second
    assert all(r["hit@1"] == rows[0]["hit@1"] for r in rows)
    assert weight == 0.0
