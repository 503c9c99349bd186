"""Visual BGE on a tiny EVA trunk + a 2-layer BERT, and its released state-dict layout."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.encoders import build_encoder
from retrieval.errors import SearchError, UsageError
from retrieval.types import Product

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
timm = pytest.importorskip("timm")
open_clip = pytest.importorskip("open_clip")

from retrieval.encoders import visual_bge_model as vbm  # noqa: E402
from retrieval.encoders.visual_bge import VisualBgeEncoder  # noqa: E402


def tiny_eva():
    return timm.create_model(
        "eva02_base_patch16_clip_224",
        pretrained=False,
        num_classes=0,
        img_size=32,
        patch_size=8,
        embed_dim=32,
        depth=1,
        num_heads=2,
    )


def tiny_network(bert_dir, seed):
    torch.manual_seed(seed)
    config = transformers.AutoConfig.from_pretrained(bert_dir)
    return vbm.VisualBGE(transformers.AutoModel.from_config(config), tiny_eva())


@pytest.fixture(scope="module")
def tokenizer(tiny_bert_dir):
    return transformers.AutoTokenizer.from_pretrained(tiny_bert_dir)


@pytest.fixture(scope="module")
def encoder(tiny_bert_dir, tokenizer):
    net = tiny_network(tiny_bert_dir, 0)
    preprocess = open_clip.image_transform(32, is_train=False)
    return VisualBgeEncoder(net, tokenizer, preprocess, batch_size=4, num_workers=0)


def _vec(encoder, product):
    return encoder.encode([product]).vectors["vbge"][0]


def test_shapes_modalities_and_failures(encoder, image_dir):
    assert [(v.name, v.size) for v in encoder.vectors()] == [("vbge", 32)]
    assert encoder.model.num_image_tokens == 16
    products = [
        Product("both", "red nike shoe", image_dir["img0"]),
        Product("text", "usb cable", None),
        Product("image", "", image_dir["img1"]),
        Product("missing", "black bag", image_dir["missing"]),
        Product("corrupt", "", image_dir["corrupt"]),
        Product("nothing", "", None),
    ]
    out = encoder.encode(products)
    rows = out.vectors["vbge"]
    assert [r is not None for r in rows] == [True, True, True, True, False, False]
    for row in (r for r in rows if r is not None):
        assert row.dtype == np.float32 and row.shape == (32,)
        assert abs(np.linalg.norm(row) - 1) < 1e-5
    assert set(out.failures) == {"missing", "corrupt"}
    # an unreadable image leaves the title: encoded as text alone
    np.testing.assert_allclose(rows[3], _vec(encoder, Product("t", "black bag")), atol=1e-5)


def test_joint_differs_from_each_side(encoder, image_dir):
    both = _vec(encoder, Product("a", "red nike shoe", image_dir["img0"]))
    text = _vec(encoder, Product("b", "red nike shoe"))
    image = _vec(encoder, Product("c", "", image_dir["img0"]))
    other = _vec(encoder, Product("d", "red nike shoe", image_dir["img3"]))
    assert not np.allclose(both, text, atol=1e-3)
    assert not np.allclose(both, image, atol=1e-3)
    assert not np.allclose(both, other, atol=1e-3)


def test_text_path_is_bge_cls(encoder, tokenizer, tiny_bert_dir):
    net = encoder.model
    bert = transformers.AutoModel.from_config(
        transformers.AutoConfig.from_pretrained(tiny_bert_dir)
    )
    bert.embeddings, bert.encoder = net.bge_embeddings, net.bge_encoder
    tok = tokenizer(["red shoe", "apple iphone usb charger"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        cls = bert(**tok).last_hidden_state[:, 0]
        ours = net.encode_text(tok["input_ids"], tok["attention_mask"])
    torch.testing.assert_close(ours, torch.nn.functional.normalize(cls, dim=-1), atol=1e-5, rtol=0)


def test_padding_and_batch_mates_do_not_change_a_vector(encoder, image_dir):
    alone = _vec(encoder, Product("a", "red", image_dir["img2"]))
    batch = [
        Product("x", "apple iphone usb charger black case", image_dir["img4"]),
        Product("a", "red", image_dir["img2"]),
        Product("y", "", image_dir["img5"]),
    ]
    np.testing.assert_allclose(encoder.encode(batch).vectors["vbge"][1], alone, atol=1e-5)


def test_original_layout_round_trip(encoder, tiny_bert_dir, tmp_path, image_dir):
    state = vbm.to_original(encoder.model)
    for key in (
        "model_visual.visual.blocks.0.attn.q_bias",
        "model_visual.visual.blocks.0.attn.inner_attn_ln.weight",
        "model_visual.visual.blocks.0.mlp.w1.weight",
        "model_visual.visual.blocks.0.mlp.ffn_ln.weight",
        "model_visual.visual.blocks.0.mlp.w3.weight",
        "model_visual.visual.pos_embed",
        "bge_embeddings.word_embeddings.weight",
        "bge_encoder.layer.1.output.dense.weight",
        "bge_pooler.dense.weight",
        "visual_proj.weight",
    ):
        assert key in state, key
    # keys the released file holds that Visual BGE does not use
    state["model_visual.logit_scale"] = torch.tensor(4.6)
    state["model_visual.visual.head.weight"] = torch.zeros(16, 32)
    state["model_visual.visual.rope.freqs_cos"] = torch.zeros(16, 16)
    state["bge_embeddings.position_ids"] = torch.arange(128)[None]
    path = tmp_path / "Visualized_tiny.pth"
    torch.save(state, path)

    fresh = tiny_network(tiny_bert_dir, 1)
    vbm.load_weights(fresh, str(path))
    loaded = VisualBgeEncoder(fresh, encoder.tokenizer, encoder.preprocess, num_workers=0)
    for product in (Product("a", "red shoe", image_dir["img0"]), Product("b", "usb cable")):
        np.testing.assert_allclose(_vec(loaded, product), _vec(encoder, product), atol=1e-5)


def test_mismatched_weights_fail_in_one_line(encoder, tiny_bert_dir, tmp_path):
    state = vbm.to_original(encoder.model)
    del state["visual_proj.bias"]
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(SearchError, match=r"1 missing .*visual_proj\.bias"):
        vbm.load_weights(tiny_network(tiny_bert_dir, 0), str(path))
    state = vbm.to_original(encoder.model)
    state["visual_proj.weight"] = torch.zeros(8, 8)
    torch.save(state, path)
    with pytest.raises(SearchError, match="do not fit"):
        vbm.load_weights(tiny_network(tiny_bert_dir, 0), str(path))
    with pytest.raises(UsageError, match="do not exist"):
        vbm.load_weights(tiny_network(tiny_bert_dir, 0), str(tmp_path / "none.pth"))


def test_factory_builds_from_text_model_path_and_weights(
    encoder, tiny_bert_dir, tmp_path, image_dir, monkeypatch
):
    path = tmp_path / "Visualized_tiny.pth"
    torch.save(vbm.to_original(encoder.model), path)
    monkeypatch.setattr(vbm, "vision_tower", lambda arch: (tiny_eva(), 32))
    spec = f"visual-bge:{tiny_bert_dir},weights={path},vision_arch=tiny,device=cpu,num_workers=0"
    built = build_encoder(spec)
    assert built.spec == spec and built.batch_size == 32
    product = Product("a", "red shoe", image_dir["img0"])
    np.testing.assert_allclose(_vec(built, product), _vec(encoder, product), atol=1e-5)
    with pytest.raises(UsageError, match="needs weights"):
        build_encoder(f"visual-bge:{tiny_bert_dir}")


def test_vision_arch_must_be_an_eva_config():
    with pytest.raises(UsageError, match="not an open_clip EVA config"):
        vbm.vision_tower("ViT-B-32")
    with pytest.raises(UsageError, match="not an open_clip EVA config"):
        vbm.vision_tower("no-such-arch")


@pytest.mark.slow
def test_eva02_b16_tower_matches_the_release():
    trunk, size = vbm.vision_tower("EVA02-B-16")
    assert size == 224 and trunk.embed_dim == 768 and trunk.patch_embed.num_patches == 196
