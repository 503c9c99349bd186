"""One interactive query (``search query`` and the web viewer): stage 1, optionally stage 2."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from retrieval.errors import UsageError
from retrieval.index import VectorIndex
from retrieval.retriever import Retriever, default_vector
from retrieval.types import Candidate, Hit, Product
from search.config import AppConfig
from search.indexing import connect, pick_collection

log = logging.getLogger(__name__)


@dataclass
class QueryResult:
    """Hits of one interactive query and how they were found; with a reranker,
    ``stage2`` holds the reranked top N (candidates carry their stage-1 rank)."""

    collection: str
    vector: str
    hits: list[Hit]
    stage2: list[Candidate] | None = None
    reranker: str | None = None

    def to_json(self, text: str, image: str | None) -> dict[str, Any]:
        return {
            "query": text,
            "image": image,
            "collection": self.collection,
            "vector": self.vector,
            "hits": [
                {
                    "rank": i + 1,
                    "id": h.id,
                    "score": h.score,
                    "title": h.title,
                    "group": h.payload.get("group"),
                    "image_path": h.payload.get("image_path"),
                }
                for i, h in enumerate(self.hits)
            ],
            **(
                {
                    "reranker": self.reranker,
                    "stage2": [
                        {
                            "rank": i + 1,
                            "id": c.id,
                            "score": c.score,
                            "stage1_rank": c.stage1_rank,
                            "stage1_score": c.stage1_score,
                            "title": c.product.title,
                        }
                        for i, c in enumerate(self.stage2)
                    ],
                }
                if self.stage2 is not None
                else {}
            ),
        }


class ModelCache:
    """Encoders and rerankers built once per spec, for a long-lived process (the web
    viewer) that opens the index per request but should not reload models."""

    def __init__(self) -> None:
        self._encoders: dict[str, Any] = {}
        self._rerankers: dict[str, Any] = {}

    def retriever(self, index: VectorIndex, collection: str) -> Retriever:
        """A retriever over the collection's encoders, built on first use."""
        from retrieval.encoders.base import build_encoder

        info = index.info(collection)
        if info is None:
            raise UsageError(f"no collection {collection!r}; run `search index` first")
        encoders = []
        for spec in info.meta.get("encoders") or []:
            if spec not in self._encoders:
                self._encoders[spec] = build_encoder(spec)
            encoders.append(self._encoders[spec])
        return Retriever(encoders, index, collection)

    def reranker(self, spec: str) -> Any:
        """The reranker a spec names, built on first use."""
        from rerank.base import build_reranker

        if spec not in self._rerankers:
            self._rerankers[spec] = build_reranker(spec)
        return self._rerankers[spec]


def query(
    cfg: AppConfig,
    text: str,
    *,
    image: str | None = None,
    collection: str | None = None,
    top_k: int = 10,
    reranker: str | None = None,
    k: int | None = None,
    models: ModelCache | None = None,
) -> QueryResult:
    """Encode one query listing with the collection's encoders and search it; with a
    reranker, retrieve ``k`` candidates and rerank them down to ``top_k``."""
    if image is not None and not Path(image).exists():
        raise UsageError(f"image not found: {image}")
    if not text.strip() and image is None:
        raise UsageError("give a query text, an --image, or both")
    index = connect(cfg)
    try:
        name = pick_collection(index, collection)
        if models is not None:
            retriever = models.retriever(index, name)
        else:
            retriever = Retriever.for_collection(index, name)
        vector = default_vector(retriever.vector_names(), cfg.stage1.vector)
        product = Product(id="__query__", title=text, image_path=image)
        enc = retriever.encode([product], query=True)
        if enc.failures:
            raise UsageError(f"cannot read the query image: {enc.failures['__query__']}")
        reqs = retriever.requests(
            enc, 1, using=vector, k=top_k, hybrid=cfg.stage1.hybrid, fusion=cfg.stage1.fusion
        )
        if reqs[0] is None:
            raise UsageError(f"the query has no {vector!r} vector (no text or no image for it)")
        limit = max(k or cfg.stage1.k, top_k) if reranker else top_k
        reqs[0] = replace(reqs[0], limit=limit)
        hits = index.search(name, reqs)[0]
        if reranker is None:
            return QueryResult(name, vector, hits)
        from rerank.base import build_reranker, rerank
        from search.pipeline import Pipeline, hits_to_candidates

        model = models.reranker(reranker) if models is not None else build_reranker(reranker)
        cands = hits_to_candidates(hits)
        if getattr(model, "needs_features", False):
            Pipeline(retriever, model).add_features([product], [cands])
        stage2 = rerank(model, product, cands)[:top_k]
        return QueryResult(name, vector, hits[:top_k], stage2, model.spec)
    finally:
        index.close()
