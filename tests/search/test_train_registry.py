"""The trainer registry: exact names, roles, and options filled from defaults, the
``[train.KIND]`` config table and the flags, in that order."""

from __future__ import annotations

import logging

import pytest

from retrieval.errors import UsageError
from search.config import load_config
from search.train.registry import TRAINERS, build_options, get_trainer


def test_every_trainer_is_registered_under_its_exact_name():
    assert TRAINERS.kinds() == ["clip", "cross-encoder", "pair-gbdt", "qwen-vl", "text", "timm"]
    roles = {name: get_trainer(name, TRAINERS.get(name).role).role for name in TRAINERS.kinds()}
    assert roles == {
        "pair-gbdt": "reranker",
        "cross-encoder": "reranker",
        "qwen-vl": "reranker",
        "clip": "biencoder",
        "text": "biencoder",
        "timm": "biencoder",
    }


def test_unknown_trainer_and_wrong_role_are_one_line_errors():
    with pytest.raises(UsageError, match="unknown trainer 'gbdt'; known: clip, cross-encoder"):
        get_trainer("gbdt", "reranker")
    with pytest.raises(UsageError, match="clip trains a biencoder: use `search train biencoder`"):
        get_trainer("clip", "reranker")


def test_options_come_from_defaults_then_config_then_flags(tmp_path, caplog):
    path = tmp_path / "search.toml"
    path.write_text("[train.cross-encoder]\nepochs = 3\nlr = 5e-5\n\n[train.pair-gbdt]\nk = 20\n")
    cfg = load_config(path)
    ce = get_trainer("cross-encoder", "reranker")
    opts = build_options(ce, cfg.train["cross-encoder"], {"lr": 1e-3, "epochs": None})
    assert (opts.epochs, opts.lr, opts.group_size, opts.k) == (3, 1e-3, 8, 50)
    gbdt = get_trainer("pair-gbdt", "reranker")
    with caplog.at_level(logging.WARNING):
        opts = build_options(gbdt, cfg.train["pair-gbdt"], {"lora_r": 8, "objective": "lambdarank"})
    assert (opts.k, opts.objective) == (20, "lambdarank")
    assert "--lora-r does not apply to pair-gbdt; ignored" in caplog.text


def test_bad_train_tables_name_the_nearest_key(tmp_path):
    path = tmp_path / "search.toml"
    path.write_text("[train.qwen-vl]\nlora_rank = 8\n")
    qwen = get_trainer("qwen-vl", "reranker")
    with pytest.raises(UsageError, match="train.qwen-vl.lora_rank; did you mean 'lora_r'"):
        build_options(qwen, load_config(path).train["qwen-vl"], {})
    path.write_text("[train]\nepochs = 2\n")
    with pytest.raises(UsageError, match=r"one table per trainer"):
        load_config(path)


def test_cross_encoder_defaults_live_in_the_trainer_config(tmp_path):
    """The options class inherits training's CrossEncoderConfig: the CLI and the
    [train.cross-encoder] table override one set of defaults; unset fields stay None
    until the trainer fills them from the recipe of the starting point."""
    from search.train.cross_encoder import CrossEncoderOptions
    from training.reranker_config import RECIPES, CrossEncoderConfig

    toml = tmp_path / "c.toml"
    toml.write_text("[train.cross-encoder]\nlr = 1e-4\nvalid_k = 10\n")
    cfg = load_config(toml)
    trainer = get_trainer("cross-encoder", "reranker")
    opts = build_options(trainer, cfg.train["cross-encoder"], {"epochs": 5.0, "head_lr": None})
    assert isinstance(opts, CrossEncoderOptions) and isinstance(opts, CrossEncoderConfig)
    assert (opts.lr, opts.valid_k, opts.epochs, opts.head_lr) == (1e-4, 10, 5.0, None)
    base = CrossEncoderConfig()
    assert all(getattr(opts, k) == getattr(base, k) for k in ("batch_size", "group_size"))
    filled = CrossEncoderConfig(lr=1e-4).resolved("fresh-head")
    assert filled.head_lr == RECIPES["fresh-head"]["head_lr"] and filled.lr == 1e-4


def test_an_unknown_trainer_table_is_an_error(tmp_path):
    from search.train.registry import TrainJob, train

    path = tmp_path / "search.toml"
    path.write_text("[train.pairgbdt]\nk = 5\n")
    with pytest.raises(UsageError, match=r"unknown config section \[train.pairgbdt\]; trainers:"):
        train(load_config(path), "pair-gbdt", "reranker", TrainJob("data", tmp_path / "m"), {})
