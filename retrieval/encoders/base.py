"""The Encoder protocol, the vectors it fills, and the registry of encoder kinds.

An encoder spec on the command line reads ``KIND[:MODEL][,key=value...]``, e.g.
``text``, ``text:BAAI/bge-small-en-v1.5,query_instruction=Represent this: ``,
``clip:ViT-B-32/laion2b_s34b_b79k``, ``clip:hf-hub:Marqo/marqo-fashionSigLIP``,
``sparse:char,ngram=2-4`` or ``fusion:image=0.5,text=0.5``. Only the first ``:``
separates the kind, so model names may contain colons.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from retrieval.device import pick_device
from retrieval.registry import Registry, int_option, optional
from retrieval.types import ComponentSpec, Product

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VectorSpec:
    """A named vector an encoder fills: dense with ``size`` dims, sparse (size None), or a
    multivector (``multivector``: a matrix of ``size``-dim rows per point, e.g. ColBERT
    token vectors, compared by MAX_SIM)."""

    name: str
    size: int | None
    distance: str = "cosine"  # cosine | dot | euclid
    idf: bool = False  # sparse only: let Qdrant apply the IDF modifier
    multivector: bool = False

    @property
    def sparse(self) -> bool:
        return self.size is None


@dataclass
class SparseVec:
    """A sparse vector: sorted unique int indices and float weights."""

    indices: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)


# dense: 1-d array; multivector: 2-d array (one row per token)
Vector = np.ndarray | SparseVec


@dataclass
class Encoded:
    """Vectors of one batch: ``vectors[name][i]`` belongs to the batch's i-th product and
    is None where the product lacks the modality (no image, unreadable image).
    ``failures`` maps product id to the reason a modality is missing."""

    vectors: dict[str, list[Vector | None]]
    failures: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Encoder(Protocol):
    """Maps batches of products to named vectors."""

    spec: str

    def vectors(self) -> list[VectorSpec]:
        """The named vectors this encoder fills, with their sizes."""
        ...

    def encode(self, products: Sequence[Product], *, query: bool = False) -> Encoded:
        """Encode one batch. ``query=True`` encodes query listings (query instruction,
        query-side sparse weights, cross-modal fallback where a side is missing)."""
        ...


EncoderSpec = ComponentSpec


ENCODERS: Registry[Encoder] = Registry("encoder")


def register_encoder(name: str) -> Callable[[Callable[..., Encoder]], Callable[..., Encoder]]:
    """Register an encoder factory ``factory(model, **options)`` under an exact kind name."""
    return ENCODERS.register(name)


def encoder_kinds() -> list[str]:
    """The registered encoder kinds."""
    import retrieval.encoders  # noqa: F401  (runs every registration)

    return ENCODERS.kinds()


def build_encoder(spec: str | EncoderSpec) -> Encoder:
    """Build an encoder from its spec; an unknown kind lists the known ones."""
    import retrieval.encoders  # noqa: F401  (runs every registration)

    return ENCODERS.build(spec)


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Row-wise L2 normalisation of a float matrix."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, eps)


def image_run(
    device: str, precision: str, batch_size: str, num_workers: str | None, *, batch: int
) -> dict[str, Any]:
    """How an image encoder runs, from its spec's options: the device picked, the
    precision, images per batch (``batch`` where blank) and DataLoader workers (absent:
    the loader's choice; blank: none)."""
    return {
        "device": pick_device(device),
        "precision": precision,
        "batch_size": int_option("batch_size", batch_size, default=batch, minimum=1),
        "num_workers": optional(int_option, "num_workers", num_workers, default=0),
    }
