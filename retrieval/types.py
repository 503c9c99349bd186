"""The records that travel between stages.

Runs and qrels are plain TREC-style dicts (``{query_id: {doc_id: score}}``), as in
beir and ranx, so every stage and the evaluator speak the same language.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from retrieval.errors import UsageError

Run = dict[str, dict[str, float]]
Qrels = dict[str, dict[str, int]]
# A long loop reports the items it just finished; a factory makes one per labelled loop
# of ``total`` items (None when the total is not known), e.g. one rich progress bar.
Progress = Callable[[int], None]
ProgressFactory = Callable[[str, "int | None"], Progress]


@dataclass(frozen=True)
class ComponentSpec:
    """A parsed ``KIND[:MODEL][,key=value...]`` string (encoders, rerankers).

    Only the first ``:`` separates the kind, so model names may hold colons."""

    kind: str
    model: str | None = None
    options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> ComponentSpec:
        text = text.strip()
        if not text:
            raise UsageError("empty component spec")
        head, *rest = text.split(",")
        kind, _, model = head.partition(":")
        options: dict[str, str] = {}
        for item in rest:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise UsageError(f"bad option {item!r} in {text!r}: expected key=value")
            options[key.strip()] = value.strip()
        # fusion:image=0.5,text=0.5 : the "model" part is itself a weight option
        if model and "=" in model:
            key, _, value = model.partition("=")
            options = {key.strip(): value.strip(), **options}
            model = ""
        return cls(kind=kind.strip(), model=model.strip() or None, options=options)

    def __str__(self) -> str:
        text = self.kind + (f":{self.model}" if self.model else "")
        return text + "".join(f",{k}={v}" for k, v in self.options.items())


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
        extra = {
            k: v for k, v in self.fields.items() if k not in ("split", "dataset") and _jsonable(v)
        }
        if extra:
            data["fields"] = extra
        return data

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Product:
        """Rebuild a product from the payload stored with its point."""
        fields = dict(payload.get("fields") or {})
        for key in ("split", "dataset"):
            if payload.get(key) is not None:
                fields[key] = payload[key]
        return cls(
            id=str(payload["id"]),
            title=str(payload.get("title") or ""),
            image_path=payload.get("image_path"),
            group=payload.get("group"),
            fields=fields,
        )


def product_text(
    product: Product, fields: Sequence[str] = (), *, sep: str = " ", labels: bool = False
) -> str:
    """The text a model reads for ``product``: its title, then the named ``fields``
    joined by ``sep``; blank parts are left out.

    The text encoders join stripped values with a blank; the rerankers join
    ``name: value`` parts with `` | `` (``labels``), the value as stored, as their
    models were trained to read it."""
    parts = [(product.title or "").strip()]
    for name in fields:
        value = product.fields.get(name)
        if value is None or value == "":
            continue
        parts.append(f"{name}: {value}" if labels else str(value).strip())
    return sep.join(p for p in parts if p)


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


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


@dataclass
class Candidate:
    """A stage-1 candidate on its way through stage 2.

    ``features`` holds what stage 1 knows of the pair (per-vector cosines, ranks),
    which feature-based rerankers read; ``score`` is the stage-2 score once set."""

    product: Product
    stage1_score: float
    stage1_rank: int
    features: dict[str, float] = field(default_factory=dict)
    score: float | None = None

    @property
    def id(self) -> str:
        return self.product.id


def hits_to_run(query_ids: list[str], hits: list[list[Hit]]) -> Run:
    """Turn per-query hit lists into a TREC-style run."""
    return {qid: {h.id: float(h.score) for h in row} for qid, row in zip(query_ids, hits)}


def queries_to_qrels(queries: list[Query]) -> Qrels:
    """Turn queries with match lists into TREC-style qrels (relevance 1)."""
    return {q.id: {m: 1 for m in q.matches} for q in queries}
