"""The config: moved keys still load (with a warning), [train.KIND] tables are tables."""

from __future__ import annotations

import logging

import pytest

from retrieval.errors import UsageError
from search.config import load_config


def test_eval_batch_size_moved_to_stage1(tmp_path, caplog):
    path = tmp_path / "old.toml"
    path.write_text("[eval]\nbatch_size = 32\nsplit = 'valid'\n")
    with caplog.at_level(logging.WARNING):
        cfg = load_config(path)
    assert cfg.stage1.batch_size == 32 and cfg.eval.split == "valid"
    assert "[eval] batch_size is deprecated: it moved to [stage1] batch_size" in caplog.text
    # the new spelling wins over the old one; a flag wins over both
    path.write_text("[eval]\nbatch_size = 32\n[stage1]\nbatch_size = 8\n")
    assert load_config(path).stage1.batch_size == 8
    assert load_config(path, stage1={"batch_size": 4}).stage1.batch_size == 4


def test_train_tables(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text("[train.clip]\nepochs = 2\n[train.text]\nlr = 1e-4\n")
    assert load_config(path).train == {"clip": {"epochs": 2}, "text": {"lr": 1e-4}}
    path.write_text("[trian.clip]\nepochs = 2\n")
    with pytest.raises(
        UsageError, match=r"unknown config section \[trian\]; did you mean \[train\]"
    ):
        load_config(path)
