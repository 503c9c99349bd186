"""One interactive query (``search query`` and the web viewer): stage 1, optionally stage 2."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from retrieval.errors import UsageError
from retrieval.index import VectorIndex
from retrieval.retriever import Retriever
from retrieval.types import Candidate, Hit, Product
from search.config import AppConfig
from search.indexing import connect, pick_collection
from search.pipeline import Pipeline

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
        from retrieval.encoders.folders import check_folders

        info = index.info(collection)
        if info is None:
            raise UsageError(f"no collection {collection!r}; run `search index` first")
        specs = info.meta.get("encoders") or []
        check_folders([s for s in specs if s not in self._encoders], info.meta, collection)
        encoders = [self.encoder(spec, build_encoder) for spec in specs]
        return Retriever(encoders, index, collection)

    def encoder(self, spec: str, build: Any) -> Any:
        """The encoder a spec names, built by ``build(spec)`` on first use."""
        if spec not in self._encoders:
            self._encoders[spec] = build(spec)
        return self._encoders[spec]

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
    """One query listing through the pipeline over the collection's encoders; with a
    reranker, retrieve ``k`` candidates and rerank them down to ``top_k``."""
    if image is not None and not Path(image).exists():
        raise UsageError(f"image not found: {image}")
    if not text.strip() and image is None:
        raise UsageError("give a query text, an --image, or both")
    model = _reranker(reranker, models) if reranker else None
    stage1 = replace(cfg.stage1, k=max(k or cfg.stage1.k, top_k) if model else top_k)
    index = connect(cfg)
    try:
        name = pick_collection(index, collection)
        if models is not None:
            retriever = models.retriever(index, name)
        else:
            retriever = Retriever.for_collection(index, name)
        pipe = Pipeline(retriever, model, stage1, replace(cfg.stage2, n=top_k))
        product = Product(id="__query__", title=text, image_path=image)
        run = pipe.run([product])
    finally:
        index.close()
    if run.failures:
        raise UsageError(f"cannot read the query image: {run.failures[product.id]}")
    if run.no_vector:
        raise UsageError(f"the query has no {pipe.vector!r} vector (no text or no image for it)")
    res = run.results[0]
    spec = model.spec if model else None
    return QueryResult(name, pipe.vector, res.hits[:top_k], res.stage2, spec)


def _reranker(spec: str, models: ModelCache | None) -> Any:
    from rerank.base import build_reranker

    return models.reranker(spec) if models is not None else build_reranker(spec)
