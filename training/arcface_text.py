"""``--kind text --loss arcface``: a sentence-transformers model trained with ArcFace.

The Shopee winners trained their title models (BERT, Indonesian BERT, XLM-R) with the
same margin head as their image models. Each train listing's title is one sample, its
group the class; batches are group-balanced; the SentenceTransformer's pooled (and,
if the model has it, normalised) embedding feeds ``training.arcface``. The best epoch on
valid recall is saved to ``out`` as a sentence-transformers folder that loads with
``--encoder text:OUT``.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.errors import SearchError
from retrieval.types import Product
from training.arcface import ArcFaceArgs, fit_arcface, grouped_splits
from training.loop import LoopResult

log = logging.getLogger(__name__)


@dataclass
class TextArcFaceArgs(ArcFaceArgs):
    """ArcFace arguments plus the start model and the token limit."""

    model: str = "all-MiniLM-L6-v2"
    max_length: int | None = None


def save_sentence_transformer(model: Any, folder: Path) -> None:
    """Save into a sibling temp folder, then move each file into place (each one is
    whole: a reader never sees half a weights file)."""
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.saving")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(str(tmp))
    for src in sorted(tmp.rglob("*")):
        dst = folder / src.relative_to(tmp)
        if src.is_dir():
            dst.mkdir(parents=True, exist_ok=True)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
    shutil.rmtree(tmp, ignore_errors=True)


def fit_text_arcface(
    train: Sequence[Product],
    valid: Sequence[Product],
    args: TextArcFaceArgs,
    score: Callable[[Any], dict[str, float]] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> tuple[LoopResult, dict[str, Any], Path]:
    """Train on the train titles' groups; the best epoch goes to ``args.out``. ``score``
    (the SentenceTransformer -> metrics) replaces the valid recall scoring; ``on_step``
    is told each optimiser step."""
    from retrieval.device import require_extra

    require_extra("text", {"torch": "torch", "sentence_transformers": "sentence-transformers"})
    require_extra("train", {"accelerate": "accelerate"})
    import torch
    from sentence_transformers import SentenceTransformer

    from retrieval.encoders.text import resolve_model
    from training.embed_eval import group_metrics

    splits = grouped_splits(train, valid, lambda p: bool(p.title.strip()), "titles", args.seed)
    titled, labels, scored = splits.train, splits.labels, splits.valid
    path = resolve_model(args.model)
    try:
        st = SentenceTransformer(path, device="cpu")
    except Exception as exc:  # hub misses, broken folders: one clear line
        raise SearchError(f"cannot load text model {path!r}: {str(exc).splitlines()[0]}") from exc
    if args.max_length:
        st.max_seq_length = args.max_length
    get_dim = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
    dim = int(get_dim())
    texts = [p.title.strip() for p in titled]

    tokenize = getattr(st, "preprocess", None) or st.tokenize  # renamed in s-t 6

    def collate(items: list[tuple[str, int]]) -> dict[str, Any]:
        return {
            "features": dict(tokenize([t for t, _ in items])),
            "labels": torch.tensor([y for _, y in items], dtype=torch.long),
        }

    def embed(model: Any, batch: dict[str, Any]) -> Any:
        return model(batch["features"])["sentence_embedding"]

    def score_valid(model: Any) -> dict[str, float]:
        if score is not None:
            return score(model)
        vecs = model.encode(
            [p.title for p in scored],
            batch_size=64,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return group_metrics(
            [p.id for p in scored], [p.group for p in scored], np.asarray(vecs), args.eval_k
        )

    dataset = list(zip(texts, labels))
    log.info("%d train titles in %d groups; %d valid", len(texts), len(splits.names), len(scored))
    result, best = fit_arcface(
        st,
        embed,
        dim,
        dataset,
        labels,
        collate,
        args,
        score_valid=score_valid if len(scored) > 1 or score is not None else None,
        export=save_sentence_transformer,
        on_step=on_step,
    )
    return result, best, Path(args.out)
