"""Epoch choice on valid: the kept epoch, the table with stage 1's row, and the one-line
verdict when the kept epoch does not beat stage 1's order of the same lists."""

from __future__ import annotations

import json

from training.ranking import ValidList
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
