"""A 2-layer random XLM-RoBERTa saved the way BGE-M3 is: the encoder, a tokenizer (word
level, XLM-R's special tokens and <s> ... </s> template) and the ColBERT and sparse heads
``colbert_linear.pt`` / ``sparse_linear.pt``; or without the heads (a bad checkpoint)."""

from __future__ import annotations

from pathlib import Path

WORDS = (
    "arla milk juice yoghurt oat soy apple orange standard medium fat sour cream samsung "
    "galaxy a52 128gb black xiaomi redmi note nike air zoom shoe original"
).split()
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def build_tiny_xlmr(path: Path, *, heads: bool = True, hidden: int = 32) -> Path:
    """Write the model (seeded) to ``path``; ``heads=False`` leaves the M3 heads out."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaModel

    path.mkdir(parents=True, exist_ok=True)
    vocab = {w: i for i, w in enumerate([*SPECIALS, *WORDS])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        cls_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
        model_max_length=64,
    )
    config = XLMRobertaConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=70,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    torch.manual_seed(0)
    XLMRobertaModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    if heads:
        torch.save(torch.nn.Linear(hidden, hidden).state_dict(), path / "colbert_linear.pt")
        torch.save(torch.nn.Linear(hidden, 1).state_dict(), path / "sparse_linear.pt")
    return path
