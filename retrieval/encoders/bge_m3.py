"""BGE-M3 through FlagEmbedding's ``BGEM3FlagModel``: one model, three vectors.

- ``bge_dense``: the normalised CLS embedding (cosine);
- ``bge_sparse``: the lexical weights (a ReLU weight per input token id) as a Qdrant
  sparse vector scored by dot product, as BGE-M3 scores them;
- ``bge_colbert``: the normalised ColBERT vectors of every token but CLS, stored as a
  Qdrant multivector compared by MAX_SIM (no HNSW graph: it rescores).

A hybrid query (``--vector hybrid``) over such a collection prefetches with the dense
and sparse vectors and rescores the union with the multivector inside Qdrant, the
layout Qdrant documents for BGE-M3 (see ``Retriever.requests``).

Model: ``bge-m3`` alone loads ``BAAI/bge-m3`` from the hub cache (``HF_HUB_OFFLINE=1``
never downloads); a local folder works too. The folder must hold the ColBERT and sparse
heads (``colbert_linear.pt``, ``sparse_linear.pt``) when those vectors are asked for:
FlagEmbedding would otherwise fill them with random weights.

Options: ``vectors`` (``+``-separated subset of dense, sparse, colbert; all three by
default), ``name_prefix`` (``bge_``), ``fields`` (Product.fields keys appended to the
title), ``max_length`` (tokens, 512), ``batch_size`` (32), ``device`` (auto),
``precision`` (auto: fp16/bf16 on a GPU, fp32 on a CPU).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.device import autocast_dtype, pick_device
from retrieval.encoders.base import Encoded, SparseVec, Vector, VectorSpec, register_encoder
from retrieval.errors import SearchError, UsageError
from retrieval.flag_compat import resolve_folder
from retrieval.registry import int_option
from retrieval.types import Product, product_text

log = logging.getLogger(__name__)

DEFAULT_MODEL = "BAAI/bge-m3"
KINDS = ("dense", "sparse", "colbert")
HEADS = {"colbert": "colbert_linear.pt", "sparse": "sparse_linear.pt"}


def sparse_vector(weights: dict[str, float]) -> SparseVec | None:
    """FlagEmbedding's {token id string: weight} as a sorted SparseVec (None if empty)."""
    items = sorted((int(k), float(v)) for k, v in weights.items() if float(v) > 0)
    if not items:
        return None
    idx, val = zip(*items)
    return SparseVec(np.array(idx, dtype=np.uint32), np.array(val, dtype=np.float32))


class BgeM3Encoder:
    """Dense, sparse and ColBERT vectors of product texts from one BGEM3FlagModel."""

    def __init__(
        self,
        model: Any,
        *,
        dim: int,
        colbert_dim: int,
        kinds: Sequence[str] = KINDS,
        name_prefix: str = "bge_",
        fields: Sequence[str] = (),
        batch_size: int = 32,
        max_length: int = 512,
    ) -> None:
        self.model = model
        self.kinds = tuple(kinds)
        self.names = {k: f"{name_prefix}{k}" for k in self.kinds}
        self.dim, self.colbert_dim = dim, colbert_dim
        self.fields = tuple(fields)
        self.batch_size, self.max_length = batch_size, max_length
        self.spec = "bge-m3"

    def vectors(self) -> list[VectorSpec]:
        specs = {
            "dense": VectorSpec(self.names.get("dense", ""), self.dim),
            "sparse": VectorSpec(self.names.get("sparse", ""), None, distance="dot"),
            "colbert": VectorSpec(
                self.names.get("colbert", ""), self.colbert_dim, multivector=True
            ),
        }
        return [specs[k] for k in self.kinds]

    def encode(self, products: Sequence[Product], *, query: bool = False) -> Encoded:
        """The asked vectors of each product's text; None where it has no text."""
        cols: dict[str, list[Vector | None]] = {
            n: [None] * len(products) for n in self.names.values()
        }
        todo = [(i, product_text(p, self.fields)) for i, p in enumerate(products)]
        todo = [(i, t) for i, t in todo if t]
        if not todo:
            return Encoded(cols)
        out = self.model.encode(
            [t for _, t in todo],
            batch_size=self.batch_size,
            max_length=self.max_length,
            return_dense="dense" in self.kinds,
            return_sparse="sparse" in self.kinds,
            return_colbert_vecs="colbert" in self.kinds,
        )
        for j, (i, _) in enumerate(todo):
            if "dense" in self.kinds:
                cols[self.names["dense"]][i] = np.asarray(out["dense_vecs"][j], dtype=np.float32)
            if "sparse" in self.kinds:
                cols[self.names["sparse"]][i] = sparse_vector(out["lexical_weights"][j])
            if "colbert" in self.kinds:
                mat = np.asarray(out["colbert_vecs"][j], dtype=np.float32)
                cols[self.names["colbert"]][i] = mat if len(mat) else None
        return Encoded(cols)


def check_heads(folder: Path, kinds: Sequence[str]) -> None:
    """The ColBERT / sparse heads must be there when their vectors are asked for."""
    missing = [HEADS[k] for k in kinds if k in HEADS and not (folder / HEADS[k]).is_file()]
    if missing:
        raise UsageError(
            f"bge-m3 weights in {folder} lack {', '.join(missing)} (the ColBERT / sparse heads); "
            "use a full BGE-M3 checkpoint, or vectors=dense"
        )


@register_encoder("bge-m3")
def build_bge_m3(
    model: str | None = None,
    *,
    vectors: str = "dense+sparse+colbert",
    name_prefix: str = "bge_",
    fields: str = "",
    max_length: str = "512",
    batch_size: str = "32",
    device: str = "auto",
    precision: str = "auto",
) -> BgeM3Encoder:
    """Build the BGE-M3 encoder from a spec's model part and options."""
    import torch

    from retrieval.flag_compat import import_flag

    flag = import_flag()
    kinds = [k.strip() for k in vectors.split("+") if k.strip()]
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise UsageError(f"bge-m3 vectors must be some of {', '.join(KINDS)}, got {vectors!r}")
    folder = resolve_folder(model or DEFAULT_MODEL, "bge-m3")
    check_heads(folder, kinds)
    dev = pick_device(device)
    dtype = autocast_dtype(dev, precision)
    length = int_option("max_length", max_length, default=512, minimum=8)
    try:
        m3 = flag.BGEM3FlagModel(
            str(folder),
            use_fp16=dtype == torch.float16,
            use_bf16=dtype == torch.bfloat16,
            devices=[dev],
            query_max_length=length,
            passage_max_length=length,
        )
    except Exception as exc:  # broken folders: one clear line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SearchError(f"cannot load bge-m3 model {str(folder)!r}: {first}") from exc
    inner = m3.model
    dim = int(inner.model.config.hidden_size)
    colbert_dim = int(inner.colbert_linear.out_features)
    log.info("bge-m3 %s on %s: dense %d, colbert %d", folder, dev, dim, colbert_dim)
    return BgeM3Encoder(
        m3,
        dim=dim,
        colbert_dim=colbert_dim,
        kinds=kinds,
        name_prefix=name_prefix,
        fields=[f.strip() for f in fields.split("+") if f.strip()],
        batch_size=int_option("batch_size", batch_size, default=32, minimum=1),
        max_length=length,
    )
