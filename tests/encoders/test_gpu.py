"""Reduced precision on a CUDA device agrees with fp32 on the CPU (mark ``gpu``)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from retrieval.encoders import build_encoder
from retrieval.types import Product

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")
transformers = pytest.importorskip("transformers")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _agree(a, b, min_cos=0.99):
    for name in a.vectors:
        for x, y in zip(a.vectors[name], b.vectors[name]):
            assert (x is None) == (y is None)
            if x is not None:
                assert x.dtype == np.float32 and float(x @ y) > min_cos


def _products(images):
    return [
        Product("a", "red nike shoe", images["img0"]),
        Product("b", "usb cable"),
        Product("c", "", images["img1"]),
    ]


def test_clip_autocast_on_cuda(tiny_clip_arch, image_dir):
    from retrieval.encoders.clip import ClipEncoder

    model, _, pre = open_clip.create_model_and_transforms(tiny_clip_arch)
    tok = open_clip.get_tokenizer(tiny_clip_arch)
    cpu = ClipEncoder(copy.deepcopy(model), pre, tok, device="cpu", num_workers=0)
    gpu = ClipEncoder(model, pre, tok, device="cuda", num_workers=0)
    assert gpu.dtype in (torch.bfloat16, torch.float16)
    _agree(gpu.encode(_products(image_dir)), cpu.encode(_products(image_dir)))


def test_visual_bge_half_on_cuda(tiny_bert_dir, image_dir):
    import timm

    from retrieval.encoders import visual_bge_model as vbm
    from retrieval.encoders.visual_bge import VisualBgeEncoder

    torch.manual_seed(0)
    config = transformers.AutoConfig.from_pretrained(tiny_bert_dir)
    eva = timm.create_model(
        "eva02_base_patch16_clip_224", num_classes=0, img_size=32, patch_size=8, embed_dim=32,
        depth=1, num_heads=2,
    )  # fmt: skip
    net = vbm.VisualBGE(transformers.AutoModel.from_config(config), eva)
    tok = transformers.AutoTokenizer.from_pretrained(tiny_bert_dir)
    pre = open_clip.image_transform(32, is_train=False)
    cpu = VisualBgeEncoder(copy.deepcopy(net), tok, pre, device="cpu", num_workers=0)
    gpu = VisualBgeEncoder(net, tok, pre, device="cuda", num_workers=0)
    _agree(gpu.encode(_products(image_dir)), cpu.encode(_products(image_dir)), 0.98)


def test_packaged_minilm_half_on_cuda():
    pytest.importorskip("sentence_transformers")
    titles = [Product(str(i), t) for i, t in enumerate(["apple iphone 12", "samsung tab", ""])]
    cpu = build_encoder("text,device=cpu").encode(titles)
    gpu = build_encoder("text,device=cuda").encode(titles)
    _agree(gpu, cpu, 0.999)
