"""Stage 2: rerankers rescoring stage-1 candidates. Imports only ``retrieval.types``
(and the shared ``retrieval.errors``)."""

from __future__ import annotations

from rerank.base import (
    Formatter,
    Reranker,
    build_reranker,
    register_reranker,
    rerank,
    rerank_batch,
    reranker_kinds,
)

__all__ = [
    "Formatter",
    "Reranker",
    "build_reranker",
    "register_reranker",
    "rerank",
    "rerank_batch",
    "reranker_kinds",
]
