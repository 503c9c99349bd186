"""Tiny random decoder LLMs for FlagEmbedding's LLM rerankers, with a byte-level BPE
tokenizer that knows "Yes" (the token those rerankers score): a Qwen2 causal LM for
``flag-llm`` and FlagEmbedding's own layer-wise MiniCPM for ``flag-layerwise``."""

from __future__ import annotations

from pathlib import Path

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


def build_tiny_layerwise(path: Path, layers: int = 4) -> Path:
    """FlagEmbedding's LayerWiseMiniCPMForCausalLM, ``layers`` deep (scoring heads from
    layer 2 on), width 32, and its tokenizer."""
    import torch

    from retrieval.flag_compat import import_flag

    import_flag()
    from FlagEmbedding.inference.reranker.decoder_only.models.configuration_minicpm_reranker import (
        LayerWiseMiniCPMConfig,
    )
    from FlagEmbedding.inference.reranker.decoder_only.models.modeling_minicpm_reranker import (
        LayerWiseMiniCPMForCausalLM,
    )

    tokenizer = _tokenizer(bos=True)
    config = LayerWiseMiniCPMConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        start_layer=2,
        tie_word_embeddings=False,
        head_type="simple",
        head_multi=True,
        attn_implementation="eager",
        # transformers 5 fills a default rope dict without the "type" MiniCPM reads; dynamic
        # NTK scaling is plain RoPE below max_position_embeddings
        rope_scaling={"type": "dynamic", "factor": 2.0},
    )
    torch.manual_seed(0)
    LayerWiseMiniCPMForCausalLM(config).save_pretrained(path)
    _save_tokenizer(tokenizer, path)
    return path
