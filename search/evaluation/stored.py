"""Catalogue queries read from the index instead of encoded again.

A listing of a catalogue matched against the catalogue is already stored: its vectors
are fetched by point id, as ``search match`` fetches them, and no encoder runs or is
even loaded (ARCHITECTURE, data flow 5); the vector specs come from the collection. A
listing missing from the collection, if any, is encoded by the collection's encoders,
built on first need. The stored vectors are the document side of each encoder (a
sparse encoder's BM25-saturated weights rather than its query weights; no
text-for-image fallback of CLIP), so a catalogue's queries read the same vectors as
its matches.
"""

from __future__ import annotations

from collections.abc import Sequence

from retrieval.encoders.base import Encoded, Vector
from retrieval.errors import UsageError
from retrieval.index.base import VectorIndex, point_id
from retrieval.retriever import Retriever
from retrieval.types import Product


class StoredQueries(Retriever):
    """A retriever over ``collection`` whose ``encode`` fetches the listings' stored
    vectors (point ids of ``dataset``); ``fetched`` and ``encoded`` count the listings
    each way."""

    def __init__(self, index: VectorIndex, collection: str, dataset: str) -> None:
        info = index.info(collection)
        if info is None:
            raise UsageError(f"no collection {collection!r}; run `search index` first")
        # no encoder is built: the specs the requests need are the collection's own
        self.index, self.collection, self.specs = index, collection, list(info.vectors)
        self.base, self.derived = [], []
        self.specs_of_encoders = list(info.meta.get("encoders") or [])
        self.dataset = dataset
        self.fetched = 0
        self.encoded = 0
        self._encoders: Retriever | None = None

    @property
    def encoder_specs(self) -> list[str]:
        return list(self.specs_of_encoders)

    def encode(self, products: Sequence[Product], *, query: bool = False) -> Encoded:
        """Every vector of every listing from the index; the ones not stored, encoded."""
        ids = [point_id(self.dataset, p.id) for p in products]
        stored = self.index.fetch(self.collection, ids)
        names = self.vector_names()
        vectors: dict[str, list[Vector | None]] = {
            name: [stored.get(pid, {}).get(name) for pid in ids] for name in names
        }
        todo = [i for i, pid in enumerate(ids) if pid not in stored]
        failures: dict[str, str] = {}
        if todo:
            if self._encoders is None:
                self._encoders = Retriever.for_collection(self.index, self.collection)
            enc = self._encoders.encode([products[i] for i in todo], query=query)
            failures.update(enc.failures)
            for name in names:
                for i, vec in zip(todo, enc.vectors.get(name, [None] * len(todo))):
                    vectors[name][i] = vec
        self.fetched += len(products) - len(todo)
        self.encoded += len(todo)
        return Encoded(vectors, failures)

    def note(self) -> str:
        """One line for the report: how many query listings were read, how many encoded."""
        return (
            f"queries read the stored vectors of {self.fetched} listings (encoded: {self.encoded})"
        )
