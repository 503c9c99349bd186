"""Tiny random decoder LLMs for FlagEmbedding's LLM rerankers, with a byte-level BPE
tokenizer that knows "Yes" (the token those rerankers score): a Qwen2 causal LM for
``flag-llm`` and a layer-wise MiniCPM checkpoint for ``flag-layerwise``."""

from __future__ import annotations

from pathlib import Path

PAIR_QUERY = "samsung galaxy a52 128gb black"
PAIR_TITLES = ("samsung galaxy a52 black", "nike air zoom shoe", "arla milk")


def title_pairs():
    """(query, candidate) pairs for the LLM rerankers: one match, two non-matches, in words
    the tiny tokenizer knows."""
    from retrieval.types import Candidate, Product

    query = Product("q", PAIR_QUERY)
    return [(query, Candidate(Product(f"c{i}", t), 0.5, i)) for i, t in enumerate(PAIR_TITLES)]


WORDS = (
    "Yes No A B : ? . ' , given two product listings and predict whether they are the same "
    "by providing a prediction of either samsung galaxy a52 128gb black xiaomi redmi note "
    "nike air zoom shoe arla milk juice"
).split()


def _tokenizer(bos: bool):
    """A byte-level BPE (Qwen2's tokenizer class) whose merges spell out ``WORDS``, so
    "Yes" and the prompt words are single tokens, as in the real checkpoints."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import Qwen2Tokenizer

    specials = ["<|endoftext|>", "<s>"]
    vocab = {t: i for i, t in enumerate([*specials, *sorted(ByteLevel.alphabet())])}
    merges = []
    for word in WORDS:
        for form in (word, f"\u0120{word}"):  # bare, and after a space (byte-level "Ġ")
            for i in range(2, len(form) + 1):
                if form[:i] not in vocab:
                    vocab[form[:i]] = len(vocab)
                    merges.append((form[: i - 1], form[i - 1]))
    return Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        bos_token="<s>" if bos else None,
        padding_side="left",
        model_max_length=256,
    )


def _save_tokenizer(tokenizer, path: Path) -> None:
    """Save it with the class AutoTokenizer must load (the layer-wise model's type has none)."""
    import json

    tokenizer.save_pretrained(path)
    config_path = path / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = "Qwen2Tokenizer"
    config_path.write_text(json.dumps(config))


def build_tiny_qwen2(path: Path) -> Path:
    """A 2-layer Qwen2ForCausalLM (width 32) and its tokenizer, saved to ``path``."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = _tokenizer(bos=False)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(path)
    _save_tokenizer(tokenizer, path)
    return path


def layerwise_config(vocab_size: int, layers: int, start_layer: int) -> dict:
    """A config.json in the layout of BAAI/bge-reranker-v2-minicpm-layerwise's, tiny."""
    return {
        "architectures": ["LayerWiseMiniCPMForCausalLM"],
        "auto_map": {
            "AutoConfig": "configuration_minicpm_reranker.LayerWiseMiniCPMConfig",
            "AutoModel": "modeling_minicpm_reranker.LayerWiseMiniCPMForCausalLM",
        },
        "model_type": "minicpm",
        "vocab_size": vocab_size,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "hidden_act": "silu",
        "max_position_embeddings": 512,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "rope_scaling": None,
        "scale_emb": 12,
        "scale_depth": 1.4,
        "dim_model_base": 16,
        "start_layer": start_layer,
        "head_type": "simple",
        "head_multi": True,
        "bos_token_id": 1,
        "eos_token_id": 0,
        "torch_dtype": "float32",
    }


def layerwise_tensors(config: dict, heads: bool = True) -> dict:
    """Random tensors named as in the released checkpoint (``model.layers.N...``, one
    ``lm_head.K.linear_head.weight`` per scored layer), large enough that layers differ."""
    import torch

    g = torch.Generator().manual_seed(0)
    h, m = config["hidden_size"], config["intermediate_size"]
    kv = h // config["num_attention_heads"] * config["num_key_value_heads"]

    def rand(*shape, scale=0.3):
        return torch.randn(*shape, generator=g) * scale

    def norm():
        return 1.0 + rand(h, scale=0.1)

    out = {"model.embed_tokens.weight": rand(config["vocab_size"], h, scale=0.05)}
    for i in range(config["num_hidden_layers"]):
        pre = f"model.layers.{i}."
        for name, shape in (("q", (h, h)), ("k", (kv, h)), ("v", (kv, h)), ("o", (h, h))):
            out[f"{pre}self_attn.{name}_proj.weight"] = rand(*shape)
        for name, shape in (("gate", (m, h)), ("up", (m, h)), ("down", (h, m))):
            out[f"{pre}mlp.{name}_proj.weight"] = rand(*shape, scale=0.2)
        out[f"{pre}input_layernorm.weight"] = norm()
        out[f"{pre}post_attention_layernorm.weight"] = norm()
    out["model.norm.weight"] = norm()
    if heads:
        for k in range(config["num_hidden_layers"] - config["start_layer"] + 1):
            out[f"lm_head.{k}.linear_head.weight"] = rand(1, h)
    return out


def build_tiny_layerwise(path: Path, layers: int = 4, heads: bool = True) -> Path:
    """A tiny layer-wise MiniCPM reranker checkpoint (config.json, model.safetensors,
    tokenizer) in the released one's layout, ``layers`` deep, heads from layer 2 on;
    ``heads=False`` leaves out the per-layer score heads."""
    import json

    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer(bos=True)
    config = layerwise_config(len(tokenizer), layers, start_layer=2)
    config["bos_token_id"], config["eos_token_id"] = tokenizer.bos_token_id, tokenizer.eos_token_id
    (path / "config.json").write_text(json.dumps(config))
    save_file(layerwise_tensors(config, heads), str(path / "model.safetensors"), {"format": "pt"})
    _save_tokenizer(tokenizer, path)
    return path
