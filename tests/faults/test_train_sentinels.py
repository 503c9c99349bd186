"""Values the help documents are accepted (issue 23, case 15): ``--patience 0`` ("0:
never") and ``--max-steps -1`` ("-1: none") were refused by the flags' own bounds
(exit 2, "not in the range x>=1"); they now reach the trainer's options."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import search.train.registry as registry
from retrieval.errors import SearchError
from search.cli import app


@pytest.mark.parametrize("kind", ["cross-encoder", "qwen-vl"])
def test_documented_sentinels_reach_the_trainer(tmp_path, monkeypatch, kind):
    seen = {}

    def train(cfg, name, role, job, flags):
        trainer = registry.get_trainer(name, role)
        seen["options"] = registry.build_options(trainer, {}, flags)
        raise SearchError("options built")  # stop before any model is loaded

    monkeypatch.setattr(registry, "train", train)
    args = ["train", "reranker", str(tmp_path), "--out", str(tmp_path / "m"), "--kind", kind]
    res = CliRunner().invoke(
        app, [*args, "--patience", "0", "--max-steps", "-1", "--data-dir", str(tmp_path)]
    )
    assert res.exit_code == 1 and "options built" in res.output, res.output
    assert seen["options"].patience == 0 and seen["options"].max_steps == -1


def test_out_of_range_values_are_still_refused(tmp_path):
    args = ["train", "reranker", str(tmp_path), "--out", str(tmp_path / "m")]
    for flag, value in (("--patience", "-1"), ("--max-steps", "-2")):
        res = CliRunner().invoke(app, [*args, flag, value])
        assert res.exit_code == 2 and "Invalid value" in res.output, res.output
