"""The open_clip encoder on a tiny random architecture registered from a config."""

from __future__ import annotations

import json

import numpy as np
import pytest

from retrieval.encoders import build_encoder
from retrieval.errors import SearchError, UsageError
from retrieval.types import Product

open_clip = pytest.importorskip("open_clip")
torch = pytest.importorskip("torch")

from retrieval.encoders.clip import ClipEncoder, resolve_model  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tiny_clip_arch):
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(tiny_clip_arch)
    return model, preprocess, open_clip.get_tokenizer(tiny_clip_arch)


@pytest.fixture
def encoder(tiny):
    return ClipEncoder(*tiny, device="cpu", batch_size=3, num_workers=0)


def _products(images):
    return [
        Product("both", "red nike air zoom", images["img0"]),
        Product("text-only", "blue phone case", None),
        Product("image-only", "", images["img1"]),
        Product("missing", "usb cable", images["missing"]),
        Product("corrupt", "", images["corrupt"]),
        Product("nothing", "  ", None),
    ]


def test_vectors_shapes_and_normalisation(encoder, image_dir):
    assert [(v.name, v.size) for v in encoder.vectors()] == [("image", 16), ("clip_text", 16)]
    out = encoder.encode(_products(image_dir))
    images, texts = out.vectors["image"], out.vectors["clip_text"]
    assert [v is not None for v in images] == [True, False, True, False, False, False]
    assert [v is not None for v in texts] == [True, True, False, True, False, False]
    for vec in [v for v in images + texts if v is not None]:
        assert vec.dtype == np.float32 and vec.shape == (16,)
        assert abs(np.linalg.norm(vec) - 1) < 1e-5
    assert set(out.failures) == {"missing", "corrupt"}


def test_query_falls_back_across_modalities(encoder, image_dir):
    products = _products(image_dir)
    doc = encoder.encode(products)
    query = encoder.encode(products, query=True)
    img, txt = query.vectors["image"], query.vectors["clip_text"]
    np.testing.assert_array_equal(img[1], doc.vectors["clip_text"][1])  # text in the image slot
    np.testing.assert_array_equal(img[3], doc.vectors["clip_text"][3])  # unreadable image too
    np.testing.assert_array_equal(txt[2], doc.vectors["image"][2])  # image in the text slot
    np.testing.assert_array_equal(img[0], doc.vectors["image"][0])  # both sides: unchanged
    assert img[5] is None and txt[5] is None and txt[4] is None


def test_deterministic_and_batch_independent(tiny, encoder, image_dir):
    products = _products(image_dir)
    first = encoder.encode(products)
    wide = ClipEncoder(*tiny, batch_size=64, num_workers=0).encode(products)
    for name in ("image", "clip_text"):
        for a, b in zip(first.vectors[name], wide.vectors[name]):
            assert (a is None and b is None) or np.allclose(a, b, atol=1e-5)


def test_name_prefix(tiny):
    enc = ClipEncoder(*tiny, name_prefix="fashion_", num_workers=0)
    assert [v.name for v in enc.vectors()] == ["fashion_image", "fashion_clip_text"]


def test_factory_loads_a_checkpoint_file(tiny, tiny_clip_arch, image_dir, tmp_path):
    model, preprocess, tokenizer = tiny
    ckpt = tmp_path / "finetuned.pt"
    torch.save(model.state_dict(), ckpt)
    enc = build_encoder(f"clip:{tiny_clip_arch},pretrained={ckpt},device=cpu,num_workers=0")
    assert enc.spec.startswith("clip:") and enc.batch_size == 64
    ref = ClipEncoder(model, preprocess, tokenizer, num_workers=0)
    products = _products(image_dir)[:3]
    got, want = enc.encode(products), ref.encode(products)
    np.testing.assert_allclose(got.vectors["image"][0], want.vectors["image"][0], atol=1e-5)
    np.testing.assert_allclose(got.vectors["clip_text"][1], want.vectors["clip_text"][1], atol=1e-5)


def test_factory_loads_a_local_folder(tiny, tiny_clip_arch, tmp_path):
    model = tiny[0]
    folder = tmp_path / "my-clip"
    folder.mkdir()
    cfg = open_clip.get_model_config(tiny_clip_arch)
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg}))
    torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
    enc = build_encoder(f"clip:{folder},num_workers=0,device=cpu")
    want = ClipEncoder(*tiny, num_workers=0).encode([Product("x", "red shoe")])
    got = enc.encode([Product("x", "red shoe")])
    np.testing.assert_allclose(got.vectors["clip_text"][0], want.vectors["clip_text"][0], atol=1e-5)


def test_model_spec_errors(tiny_clip_arch, tmp_path):
    with pytest.raises(UsageError, match="unknown open_clip architecture"):
        resolve_model("ViT-B-32-nope", None)
    with pytest.raises(UsageError, match="needs weights"):
        resolve_model("ViT-B-32", None)
    with pytest.raises(UsageError, match="not both"):
        resolve_model("ViT-B-32/openai", "x.pt")
    with pytest.raises(UsageError, match="does not exist"):
        resolve_model("ViT-B-32", str(tmp_path / "none.pt"))
    assert resolve_model(None, None) == ("ViT-B-32", "laion2b_s34b_b79k")
    assert resolve_model("hf-hub:Marqo/marqo-fashionSigLIP", None)[1] is None
    assert resolve_model(str(tmp_path), None) == (f"local-dir:{tmp_path}", None)
    with pytest.raises(UsageError, match="bad options"):
        build_encoder(f"clip:{tiny_clip_arch},pretrained=none,colour=red")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="no .safetensors"):
        build_encoder(f"clip:{empty}")


def test_uncached_hub_model_fails_in_one_line():
    with pytest.raises(SearchError, match="cannot load clip model") as info:
        build_encoder("clip:hf-hub:nobody/not-a-cached-model-xyz")
    assert "\n" not in str(info.value)
