"""Encoder fixtures: small images in tmp_path and tiny random models built from configs.

Nothing here touches the network: HF_HUB_OFFLINE is set before any hub client loads.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def write_image(path: Path, seed: int, size: tuple[int, int] = (48, 40)) -> str:
    """A random RGB image (a smooth gradient plus noise, distinct per seed)."""
    rng = np.random.default_rng(seed)
    w, h = size
    base = rng.integers(0, 255, (1, 1, 3))
    grad = np.linspace(0, 1, w)[None, :, None] * rng.integers(0, 255, (1, 1, 3))
    noise = rng.integers(0, 60, (h, w, 3))
    arr = np.clip(base * 0.5 + grad + noise, 0, 255).astype(np.uint8)
    Image.fromarray(arr).save(path)
    return str(path)


@pytest.fixture
def make_image():
    """``make_image(path, seed)`` writes a random RGB image and returns its path."""
    return write_image


@pytest.fixture
def image_dir(tmp_path):
    """Eight images img0..img7.png, a corrupt file and the path of a missing one."""
    folder = tmp_path / "images"
    folder.mkdir()
    paths = {f"img{i}": write_image(folder / f"img{i}.png", i) for i in range(8)}
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    paths["corrupt"] = str(folder / "corrupt.jpg")
    paths["missing"] = str(folder / "missing.png")
    return paths


@pytest.fixture(scope="session")
def tiny_clip_arch(tmp_path_factory):
    """Name of a tiny open_clip architecture registered from a config in a tmp dir."""
    open_clip = pytest.importorskip("open_clip")
    name = f"tiny-clip-{uuid.uuid4().hex[:8]}"
    cfg = {
        "embed_dim": 16,
        "vision_cfg": {
            "image_size": 32,
            "layers": 1,
            "width": 32,
            "patch_size": 8,
            "head_width": 16,
        },
        "text_cfg": {
            "context_length": 16,
            "vocab_size": 49408,
            "width": 32,
            "heads": 2,
            "layers": 1,
        },
    }
    path = tmp_path_factory.mktemp("clipcfg") / f"{name}.json"
    path.write_text(json.dumps(cfg))
    open_clip.add_model_config(path)
    return name


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory):
    """A 2-layer random BERT and its WordPiece tokenizer saved as a transformers folder."""
    pytest.importorskip("transformers")
    from helpers.tiny_bert import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))
