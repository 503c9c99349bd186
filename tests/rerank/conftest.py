"""Tiny random rerank models built from configs, saved once per session; no network."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.tiny_qwen import build_tiny_qwen_vl
from PIL import Image

from retrieval.types import Candidate, Product

WORDS = (
    "samsung galaxy a52 128gb hitam xiaomi redmi note 10 64 gb nike air zoom sepatu "
    "original garansi resmi murah putih biru listing do these two show the same product "
    "answer or"
).split()


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory) -> Path:
    """A 2-layer BERT with one output logit and a word-piece vocabulary of shop words."""
    from helpers.tiny_bert import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("tiny-ce"), classifier=True)


@pytest.fixture(scope="session")
def tiny_qwen_vl(tmp_path_factory) -> Path:
    """A random Qwen2-VL (2 text layers, 1 vision block, width 32), a word-level tokenizer
    with Qwen2-VL's special tokens and "yes"/"no", and a Qwen2VLProcessor."""
    return build_tiny_qwen_vl(tmp_path_factory.mktemp("tiny-qwen-vl"), WORDS)


@pytest.fixture()
def images(tmp_path) -> dict[str, str]:
    """Two small images, a corrupt file and a missing path."""
    red, blue = tmp_path / "red.png", tmp_path / "blue.jpg"
    Image.new("RGB", (90, 60), (220, 20, 20)).save(red)
    Image.new("RGB", (40, 70), (20, 20, 220)).save(blue)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"not an image")
    return {
        "red": str(red),
        "blue": str(blue),
        "corrupt": str(corrupt),
        "missing": str(tmp_path / "missing.png"),
    }


def _make_pairs(rows: list[tuple[str, str | None, str, str | None]]) -> list:
    pairs = []
    for i, (qt, qi, ct, ci) in enumerate(rows):
        query = Product(id=f"q{i}", title=qt, image_path=qi)
        cand = Candidate(Product(id=f"c{i}", title=ct, image_path=ci), 0.5, i)
        pairs.append((query, cand))
    return pairs


@pytest.fixture()
def make_pairs():
    """Rows of (query title, query image, candidate title, candidate image) -> pairs."""
    return _make_pairs
