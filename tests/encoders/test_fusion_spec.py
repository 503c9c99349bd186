"""Encoder specs and early fusion."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.encoders import EncoderSpec, VectorSpec, build_encoder
from retrieval.errors import UsageError


def test_spec_parsing_keeps_colons_in_model_names():
    spec = EncoderSpec.parse("clip:hf-hub:Marqo/marqo-fashionSigLIP,batch_size=32")
    assert spec.kind == "clip"
    assert spec.model == "hf-hub:Marqo/marqo-fashionSigLIP"
    assert spec.options == {"batch_size": "32"}
    assert str(spec) == "clip:hf-hub:Marqo/marqo-fashionSigLIP,batch_size=32"
    assert EncoderSpec.parse("fusion:image=0.5,text=0.5").options == {"image": "0.5", "text": "0.5"}
    with pytest.raises(UsageError):
        EncoderSpec.parse("text,oops")


def test_fused_cosine_is_weighted_sum_of_modality_cosines():
    fusion = build_encoder("fusion:image=0.3,text=0.7")
    fusion.bind([VectorSpec("image", 3), VectorSpec("text", 2)])
    assert fusion.vectors() == [VectorSpec("fused", 5)]
    img = [np.array([1.0, 0, 0]), np.array([0.6, 0.8, 0])]
    txt = [np.array([1.0, 0]), np.array([0.0, 1.0])]
    a, b = fusion.combine({"image": img, "text": txt}, 2)
    expected = 0.3 * (img[0] @ img[1]) + 0.7 * (txt[0] @ txt[1])  # weights sum to 1
    assert float(a @ b) == pytest.approx(expected, abs=1e-6)


def test_missing_modality_gives_zeros_and_all_missing_gives_none():
    fusion = build_encoder("fusion:image=1,text=1")
    fusion.bind([VectorSpec("image", 2), VectorSpec("text", 2)])
    only_text, none = fusion.combine(
        {"image": [None, None], "text": [np.array([0.0, 2.0]), None]}, 2
    )
    assert np.allclose(only_text, [0, 0, 0, 1])
    assert none is None


def test_fusion_of_unknown_vector_lists_the_dense_ones():
    fusion = build_encoder("fusion:image=1,text=1")
    with pytest.raises(UsageError, match="have: text"):
        fusion.bind([VectorSpec("text", 2), VectorSpec("sparse", None)])
