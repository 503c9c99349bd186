"""A 2-layer random BERT with a WordPiece vocabulary of shop words, saved as a
transformers folder (plain encoder, or with a one-logit classification head)."""

from __future__ import annotations

from pathlib import Path

WORDS = (
    "samsung galaxy a52 128gb hitam xiaomi redmi note 10 64 gb nike air zoom sepatu "
    "original garansi resmi murah putih biru apple iphone case cable usb charger"
).split()
CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789")
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *CHARS]
VOCAB += [f"##{c}" for c in CHARS]


def build_tiny_bert(path: Path, *, classifier: bool = False) -> Path:
    """Write the model and its tokenizer to ``path`` (seeded: the same weights each time)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertModel, BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(path / "vocab.txt"), do_lower_case=True)
    config = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=1,
    )
    torch.manual_seed(0)
    model = BertForSequenceClassification(config) if classifier else BertModel(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
