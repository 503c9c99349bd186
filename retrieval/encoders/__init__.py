"""Encoders: the protocol, the registry and one module per kind.

Importing this package registers every kind without importing torch; each factory
imports its heavy stack when it is called.
"""

from __future__ import annotations

from retrieval.encoders import (  # noqa: F401  (registration)
    bge_m3,
    clip,
    fusion,
    phash,
    sparse,
    text,
    timm_encoder,
    visual_bge,
)
from retrieval.encoders.base import (
    Encoded,
    Encoder,
    EncoderSpec,
    SparseVec,
    VectorSpec,
    build_encoder,
    encoder_kinds,
    register_encoder,
)

__all__ = [
    "Encoded",
    "Encoder",
    "EncoderSpec",
    "SparseVec",
    "VectorSpec",
    "build_encoder",
    "encoder_kinds",
    "register_encoder",
]
