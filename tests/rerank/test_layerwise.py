"""The ``flag-layerwise`` reranker on a tiny random checkpoint in the released layout
(config.json, model.safetensors with ``lm_head.K.linear_head`` per scored layer, a
tokenizer): scores per cutoff layer, FlagEmbedding's input layout, the same numbers as
FlagEmbedding's own network, and one-line errors for checkpoints it cannot score."""

from __future__ import annotations

import json
import sys

import pytest

from retrieval.errors import SearchError, UsageError

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("safetensors")

from helpers.tiny_llm import (  # noqa: E402
    PAIR_QUERY,
    PAIR_TITLES,
    build_tiny_layerwise,  # noqa: E402
)
from helpers.tiny_llm import title_pairs as pairs  # noqa: E402

from rerank import build_reranker, reranker_kinds  # noqa: E402


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return build_tiny_layerwise(tmp_path_factory.mktemp("lw") / "model", layers=4)


def test_scores_lie_in_0_1_and_differ_by_cutoff_layer(ckpt, monkeypatch):
    monkeypatch.setitem(sys.modules, "FlagEmbedding", None)  # our network, not FlagEmbedding's
    assert "flag-layerwise" in reranker_kinds()
    by_layer = {}
    for layer in (2, 3, 4):
        reranker = build_reranker(f"flag-layerwise:{ckpt},cutoff_layer={layer},device=cpu")
        scores = reranker.score(pairs())
        assert len(scores) == 3 and all(0.0 < s < 1.0 for s in scores)
        # order kept, batches independent: one pair alone scores as in the batch
        assert reranker.score(pairs()[1:2]) == pytest.approx(scores[1:2], abs=1e-5)
        by_layer[layer] = scores
    for a, b in ((2, 3), (3, 4), (2, 4)):
        assert by_layer[a] != pytest.approx(by_layer[b], abs=1e-3)
    # no cutoff_layer: the last layer, FlagEmbedding's default
    assert build_reranker(f"flag-layerwise:{ckpt},device=cpu").score(pairs()) == pytest.approx(
        by_layer[4], abs=1e-6
    )
    assert reranker.score([]) == []


def test_input_layout_is_flagembeddings(ckpt):
    from rerank.flag import PRODUCT_PROMPT

    reranker = build_reranker(f"flag-layerwise:{ckpt},cutoff_layer=3,device=cpu,max_length=16")
    ids = reranker.encode([("samsung galaxy", "arla milk")])[0]
    text = reranker.tokenizer.decode(ids)
    assert text == f"<s>A: samsung galaxy\nB: arla milk\n{PRODUCT_PROMPT}"
    # the candidate is cut at max_length tokens, the query at 3/4 of it
    query = reranker._ids(["A: samsung"])[0]
    long = reranker.encode([("samsung", " ".join(["milk"] * 40))])[0]
    assert len(long) == 1 + len(query) + 1 + 16 + 1 + len(reranker.prompt_ids)
    # and the pair fits max_length plus separator and prompt (FlagEmbedding's only_second)
    short = build_reranker(f"flag-layerwise:{ckpt},device=cpu,max_length=16,prompt=Yes")
    both = short.encode([(" ".join(["shoe"] * 40), " ".join(["milk"] * 40))])[0]
    assert len(short.prompt_ids) == 1 and len(both) == (16 + 1 + 1) + 1 + 1
    other = build_reranker(f"flag-layerwise:{ckpt},cutoff_layer=3,device=cpu,prompt=Yes or No ?")
    assert other.score(pairs()) != pytest.approx(reranker.score(pairs()), abs=1e-6)


@pytest.mark.parametrize("rope", [None, {"type": "linear", "factor": 4.0}])
def test_same_numbers_as_flagembeddings_network(ckpt, tmp_path, rope):
    """FlagEmbedding's LayerWiseMiniCPMForCausalLM, built from the same config and
    tensors, scores alike: plain RoPE (theirs: dynamic NTK, the same below 512
    positions) and linear position scaling."""
    import shutil

    from retrieval.flag_compat import import_flag

    try:
        import_flag()
    except ImportError:  # pragma: no cover
        pytest.skip("FlagEmbedding is not installed")
    from FlagEmbedding.inference.reranker.decoder_only.models.configuration_minicpm_reranker import (
        LayerWiseMiniCPMConfig,
    )
    from FlagEmbedding.inference.reranker.decoder_only.models.modeling_minicpm_reranker import (
        LayerWiseMiniCPMForCausalLM,
    )
    from safetensors.torch import load_file

    folder = shutil.copytree(ckpt, tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    config["rope_scaling"] = rope
    (folder / "config.json").write_text(json.dumps(config))
    for key in ("architectures", "auto_map", "model_type"):
        config.pop(key)
    config.update(rope_scaling=dict(rope or {"type": "dynamic", "factor": 2.0}))
    ref = LayerWiseMiniCPMForCausalLM(
        LayerWiseMiniCPMConfig(**config, attn_implementation="eager", tie_word_embeddings=False)
    )
    ref.load_state_dict(load_file(str(folder / "model.safetensors")))
    ref.eval()
    texts = [(PAIR_QUERY, t) for t in PAIR_TITLES]
    for layer in (2, 3, 4):
        reranker = build_reranker(f"flag-layerwise:{folder},cutoff_layer={layer},device=cpu")
        ids = reranker.encode(texts)
        width = max(map(len, ids))
        input_ids = torch.tensor([r + [0] * (width - len(r)) for r in ids])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in ids])
        with torch.no_grad():
            out = ref(
                input_ids=input_ids, attention_mask=mask, cutoff_layers=[layer], use_cache=False
            )
        last = out.logits[0][torch.arange(len(ids)), mask.sum(1) - 1]
        assert reranker.score(pairs()) == pytest.approx(torch.sigmoid(last).tolist(), abs=1e-5)


def test_sharded_checkpoint_reads_alike(ckpt, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    shards = tmp_path / "sharded"
    shutil.copytree(ckpt, shards)
    (shards / "model.safetensors").unlink()
    tensors = load_file(str(ckpt / "model.safetensors"))
    names = sorted(tensors)
    weight_map = {}
    for i, part in enumerate((names[::2], names[1::2])):
        file = f"model-0000{i + 1}-of-00002.safetensors"
        save_file({n: tensors[n] for n in part}, str(shards / file), {"format": "pt"})
        weight_map.update(dict.fromkeys(part, file))
    (shards / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    want = build_reranker(f"flag-layerwise:{ckpt},cutoff_layer=3,device=cpu").score(pairs())
    got = build_reranker(f"flag-layerwise:{shards},cutoff_layer=3,device=cpu").score(pairs())
    assert got == pytest.approx(want, abs=1e-6)


def test_checkpoint_without_layer_heads_is_one_line(tmp_path):
    folder = build_tiny_layerwise(tmp_path / "noheads", layers=4, heads=False)
    with pytest.raises(
        UsageError, match="no per-layer score head lm_head.1.linear_head.weight"
    ) as e:
        build_reranker(f"flag-layerwise:{folder},cutoff_layer=3,device=cpu")
    assert "\n" not in str(e.value)


def test_bad_checkpoints_and_options_are_one_line(ckpt, tmp_path, monkeypatch):
    for layer in (1, 5):  # below start_layer, past the depth
        with pytest.raises(UsageError, match=r"cutoff_layer=\d, but .* scores layers 2\.\.4"):
            build_reranker(f"flag-layerwise:{ckpt},cutoff_layer={layer},device=cpu")
    plain = tmp_path / "plain"
    plain.mkdir()
    config = json.loads((ckpt / "config.json").read_text())
    del config["start_layer"]
    (plain / "config.json").write_text(json.dumps(config))
    with pytest.raises(UsageError, match="no start_layer: not a layer-wise reranker"):
        build_reranker(f"flag-layerwise:{plain},device=cpu")
    with pytest.raises(UsageError, match="bad options for reranker 'flag-layerwise'"):
        build_reranker(f"flag-layerwise:{ckpt},cutoff=3")
    with pytest.raises(UsageError, match="cutoff_layer"):
        build_reranker(f"flag-layerwise:{ckpt},cutoff_layer=deep")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        SearchError, match="cannot load flag-layerwise model 'nobody/no-such-model'"
    ):
        build_reranker("flag-layerwise:nobody/no-such-model,device=cpu")
