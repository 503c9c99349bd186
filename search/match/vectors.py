"""A catalogue's stored vectors, fetched from the index by point id (never re-encoded).

Self-matching a catalogue needs every listing's vectors twice: as the query of its own
candidate search and to score each candidate pair. Both come from the collection, in
batches of point ids; encoding happened once, at index time.

Scores are calibrated similarities, so a threshold means the same thing for every
listing: the cosine of two dense vectors, and for a sparse (lexical) vector the cosine
of the TF-IDF vectors, the IDF counted over the listings matched (Qdrant applies its
own IDF at search time; the stored weights are BM25-saturated term frequencies).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from retrieval.encoders.base import SparseVec, Vector
from retrieval.errors import UsageError
from retrieval.index.base import VectorIndex, point_id

log = logging.getLogger(__name__)
Progress = Callable[[int], None]
CHUNK = 16384  # pairs scored at once


@dataclass
class StoredVectors:
    """Rows of listings: dense vectors L2-normalised, sparse ones as TF-IDF rows.

    ``raw`` keeps each listing's vectors as stored, to query the index with them."""

    ids: list[str]
    dense: dict[str, np.ndarray] = field(default_factory=dict)
    sparse: dict[str, object] = field(default_factory=dict)  # scipy CSR, rows L2-normalised
    present: dict[str, np.ndarray] = field(default_factory=dict)
    raw: list[dict[str, Vector]] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return list(self.dense) + list(self.sparse)

    def __len__(self) -> int:
        return len(self.ids)

    def pair_sims(self, name: str, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """Cosine of the named vector for every pair (src[e], dst[e]); 0 where one lacks it.
        Pairs go in chunks, so the gathered rows stay small."""
        out = np.empty(len(src), dtype=np.float32)
        for a in range(0, len(src), CHUNK):
            s, d = src[a : a + CHUNK], dst[a : a + CHUNK]
            if name in self.dense:
                mat = self.dense[name]
                out[a : a + CHUNK] = np.einsum("ij,ij->i", mat[s], mat[d])
            else:
                mat = self.sparse[name]
                out[a : a + CHUNK] = np.asarray(mat[s].multiply(mat[d]).sum(axis=1)).ravel()
        return np.clip(out, -1.0, 1.0)

    def subset(self, rows: np.ndarray) -> StoredVectors:
        """The listings at ``rows``, in that order."""
        return StoredVectors(
            [self.ids[i] for i in rows],
            {k: v[rows] for k, v in self.dense.items()},
            {k: v[rows] for k, v in self.sparse.items()},
            {k: v[rows] for k, v in self.present.items()},
            [self.raw[i] for i in rows] if self.raw else [],
        )


def fetch_vectors(
    index: VectorIndex,
    collection: str,
    dataset: str,
    ids: Sequence[str],
    names: Sequence[str],
    *,
    batch_size: int = 512,
    progress: Progress | None = None,
) -> StoredVectors:
    """Every listing's stored vectors by point id, in batches; a listing the collection
    does not hold is a one-line error (index the dataset first)."""
    if not names:  # else every listing would look as if it had no vector
        raise UsageError(f"no vector of collection {collection!r} named to read")
    raw: list[dict[str, Vector]] = []
    for start in range(0, len(ids), batch_size):
        chunk = list(ids[start : start + batch_size])
        pids = [point_id(dataset, pid) for pid in chunk]
        got = index.fetch(collection, pids)
        for pid, point in zip(chunk, pids):
            if point not in got:
                raise UsageError(
                    f"listing {pid!r} is not in collection {collection!r}; "
                    "run `search index` on this dataset first"
                )
            if not any(got[point].get(n) is not None for n in names):
                raise UsageError(
                    f"listing {pid!r} has no stored vector ({', '.join(names)}) in collection "
                    f"{collection!r}: no title or readable image to encode; fix or drop it"
                )
            raw.append(got[point])
        if progress:
            progress(len(chunk))
    return build_store(list(ids), raw, names)


def build_store(
    ids: list[str], raw: list[dict[str, Vector]], names: Sequence[str]
) -> StoredVectors:
    """Normalised matrices of the named vectors of every listing (``raw[i]`` by name)."""
    store = StoredVectors(ids, raw=raw)
    for name in names:
        values = [r.get(name) for r in raw]
        kinds = {isinstance(v, SparseVec) for v in values if v is not None}
        store.present[name] = np.array([v is not None for v in values], dtype=bool)
        if True in kinds:
            store.sparse[name] = tfidf_rows(values)
        else:
            store.dense[name] = dense_rows(values)
    return store


def dense_rows(values: Sequence[Vector | None]) -> np.ndarray:
    """A float32 matrix of L2-normalised rows (zeros where a listing lacks the vector)."""
    size = next((len(v) for v in values if v is not None), 0)
    mat = np.zeros((len(values), size), dtype=np.float32)
    for i, v in enumerate(values):
        if v is not None:
            mat[i] = v
    norms = np.linalg.norm(mat, axis=1, keepdims=True)
    return mat / np.maximum(norms, 1e-12)


def tfidf_rows(values: Sequence[Vector | None]) -> object:
    """Sparse rows weighted by a smooth IDF over these listings, L2-normalised (CSR)."""
    from scipy import sparse

    indptr = [0]
    cols: list[np.ndarray] = []
    data: list[np.ndarray] = []
    for v in values:
        if isinstance(v, SparseVec) and len(v):
            cols.append(np.asarray(v.indices, dtype=np.int64))
            data.append(np.asarray(v.values, dtype=np.float32))
            indptr.append(indptr[-1] + len(v))
        else:
            indptr.append(indptr[-1])
    if not cols:
        return sparse.csr_matrix((len(values), 1), dtype=np.float32)
    terms, col = np.unique(np.concatenate(cols), return_inverse=True)
    mat = sparse.csr_matrix(
        (np.concatenate(data), col, np.asarray(indptr)), shape=(len(values), len(terms))
    )
    df = np.bincount(col, minlength=len(terms)).astype(np.float32)
    idf = np.log((1.0 + len(values)) / (1.0 + df)) + 1.0
    mat = mat.multiply(idf[None, :]).tocsr()
    norms = np.sqrt(np.asarray(mat.multiply(mat).sum(axis=1)).ravel())
    inv = np.where(norms > 0, 1.0 / np.maximum(norms, 1e-12), 0.0).astype(np.float32)
    return sparse.diags(inv).dot(mat).tocsr().astype(np.float32)
