"""The records that travel between stages.

Runs and qrels are plain TREC-style dicts (``{query_id: {doc_id: score}}``), as in
beir and ranx, so every stage and the evaluator speak the same language.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Run = dict[str, dict[str, float]]
Qrels = dict[str, dict[str, int]]


@dataclass(frozen=True)
class Product:
    """One listing: a title and/or an image, and the group of listings it matches."""

    id: str
    title: str = ""
    image_path: str | None = None
    group: str | None = None
    fields: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def payload(self, dataset: str) -> dict[str, Any]:
        """The payload stored with the product's point in the index."""
        data: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "group": self.group,
            "image_path": self.image_path,
            "dataset": dataset,
        }
        split = self.fields.get("split")
        if split is not None:
            data["split"] = split
        return data


@dataclass(frozen=True)
class Query:
    """A query listing and the ids of the gallery listings that match it."""

    product: Product
    matches: tuple[str, ...] = ()
    split: str | None = None

    @property
    def id(self) -> str:
        return self.product.id


@dataclass(frozen=True)
class Hit:
    """One retrieved candidate: product id, score, and the stored payload."""

    id: str
    score: float
    payload: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def title(self) -> str:
        return str(self.payload.get("title") or "")


def hits_to_run(query_ids: list[str], hits: list[list[Hit]]) -> Run:
    """Turn per-query hit lists into a TREC-style run."""
    return {qid: {h.id: float(h.score) for h in row} for qid, row in zip(query_ids, hits)}


def queries_to_qrels(queries: list[Query]) -> Qrels:
    """Turn queries with match lists into TREC-style qrels (relevance 1)."""
    return {q.id: {m: 1 for m in q.matches} for q in queries}
