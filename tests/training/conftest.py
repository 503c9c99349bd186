"""A tiny random BERT (see helpers.tiny_bert) and a synthetic catalogue for the trainers;
nothing touches the network."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A plain 2-layer BERT encoder (no head) and its tokenizer."""
    pytest.importorskip("transformers")
    from helpers.tiny_bert import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def synth_set(tmp_path_factory) -> Path:
    """A synthetic Shopee-layout catalogue of 30 groups."""
    from retrieval.data.synth import synthesize

    return synthesize(tmp_path_factory.mktemp("synth") / "data", groups=30, seed=0, image_size=32)
