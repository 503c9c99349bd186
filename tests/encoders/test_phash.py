"""Perceptual hashes as +-1 vectors: cosine = 1 - 2 * hamming / bits."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from retrieval.encoders import build_encoder
from retrieval.errors import UsageError
from retrieval.types import Product

imagehash = pytest.importorskip("imagehash")


def test_vectors_and_failures(image_dir):
    enc = build_encoder("phash")
    assert [(v.name, v.size) for v in enc.vectors()] == [("phash", 64)]
    products = [
        Product("a", "", image_dir["img0"]),
        Product("b", "title only"),
        Product("c", "", image_dir["missing"]),
        Product("d", "", image_dir["corrupt"]),
        Product("e", "", image_dir["img1"]),
    ]
    out = enc.encode(products, query=True)
    rows = out.vectors["phash"]
    assert [r is not None for r in rows] == [True, False, False, False, True]
    assert set(out.failures) == {"c", "d"}
    for row in (rows[0], rows[4]):
        assert row.dtype == np.float32 and row.shape == (64,)
        assert abs(np.linalg.norm(row) - 1) < 1e-6
        assert np.allclose(np.abs(row), 1 / 8)


def test_cosine_is_one_minus_twice_the_hamming_fraction(image_dir):
    enc = build_encoder("phash,hash_size=16,workers=2")
    refs = [image_dir[f"img{i}"] for i in range(4)]
    rows = enc.encode([Product(str(i), "", r) for i, r in enumerate(refs)]).vectors["phash"]
    assert rows[0].shape == (256,)
    for i in range(1, 4):
        a = imagehash.phash(Image.open(refs[0]), hash_size=16)
        b = imagehash.phash(Image.open(refs[i]), hash_size=16)
        assert float(rows[0] @ rows[i]) == pytest.approx(1 - 2 * (a - b) / 256, abs=1e-6)


def test_resized_copy_stays_close(tmp_path, image_dir):
    small = tmp_path / "small.jpg"
    Image.open(image_dir["img2"]).resize((24, 20)).save(small, quality=70)
    enc = build_encoder("phash")
    rows = enc.encode(
        [
            Product("o", "", image_dir["img2"]),
            Product("s", "", str(small)),
            Product("x", "", image_dir["img5"]),
        ]
    ).vectors["phash"]
    assert float(rows[0] @ rows[1]) > float(rows[0] @ rows[2])


def test_methods_and_bad_options(image_dir):
    for method in ("dhash", "ahash", "whash"):
        enc = build_encoder(f"phash:{method}")
        assert enc.encode([Product("a", "", image_dir["img0"])]).vectors["phash"][0].shape == (64,)
    with pytest.raises(UsageError, match="unknown hash method"):
        build_encoder("phash,method=md5")
    with pytest.raises(UsageError, match="integer"):
        build_encoder("phash,hash_size=big")
    with pytest.raises(UsageError, match="power-of-two"):
        build_encoder("phash:whash,hash_size=12")
