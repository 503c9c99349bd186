"""How a batch of encoded queries becomes the index's requests, and how the answers
come back: one request per query (the vector searched, or a hybrid query fusing the
query's vectors; a multivector such as BGE-M3's ColBERT rescoring the others' prefetch),
each vector's own answer kept beside the fused one (a hybrid request sent as one request
per vector and fused here as the back-ends fuse it), and what a batch cost
(``BatchHits``). ``Retriever.search_batch`` drives it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from retrieval.encoders.base import Encoded, VectorSpec
from retrieval.errors import UsageError
from retrieval.index.base import HYBRID, SearchRequest, VectorIndex
from retrieval.index.rank_fusion import join_hybrid, split_hybrid
from retrieval.types import Hit


def build_requests(
    specs: Sequence[VectorSpec],
    encoded: Encoded,
    n: int,
    query: SearchRequest,
    filters: Sequence[dict[str, str] | None] | None = None,
) -> list[SearchRequest | None]:
    """One request per encoded query: ``query`` (vector to search or ``hybrid``, limit,
    fused vectors, fusion, payload; its vectors left empty) with the query's vectors
    and filter, or None where the query lacks the vector to search. A hybrid query over
    a collection with a multivector (BGE-M3's ``bge_colbert``) prefetches with the
    other vectors and rescores their union by MAX_SIM."""
    known, using = [v.name for v in specs], query.using
    if using != HYBRID and using not in known:
        raise UsageError(
            f"unknown vector {using!r}; this collection has: {', '.join(known)}, hybrid"
        )
    fuse = list(query.hybrid) or known
    for name in fuse:
        if name not in known:
            raise UsageError(f"unknown vector {name!r} in --hybrid; have: {', '.join(known)}")
    # a multivector (ColBERT) among the fused vectors rescores the others' prefetch
    multi = {v.name for v in specs if v.multivector}
    rescore = next((nm for nm in fuse if nm in multi), None) if using == HYBRID else None
    fuse = [nm for nm in fuse if nm != rescore]
    out: list[SearchRequest | None] = []
    for i in range(n):
        vecs = {name: col[i] for name, col in encoded.vectors.items() if col[i] is not None}
        req: SearchRequest | None = None
        if using == HYBRID:
            names = tuple(nm for nm in fuse if nm in vecs)
            rescorer = rescore if rescore in vecs else None
            if names:
                mode = HYBRID if len(names) > 1 or rescorer else names[0]
                req = replace(query, using=mode, hybrid=names, rescore=rescorer)
        elif using in vecs:
            req = replace(query, hybrid=())
        flt = filters[i] if filters is not None else None
        out.append(req and replace(req, vectors=vecs, filter=flt))
    return out


@dataclass
class BatchHits:
    """Stage-1 answers of one batch of queries, and what they cost."""

    hits: list[list[Hit]]  # per query, best first
    missing: list[str]  # ids of queries lacking the searched vector (no request sent)
    failures: dict[str, str]  # query id -> why a modality could not be encoded
    encode_s: float  # query encoding (and building the requests)
    index_s: float  # the index's search
    # search_batch(lists=True): per query, each searched vector's own answer, ranked
    # (None where the index fused or rescored it itself: a multivector rescore)
    lists: list[dict[str, list[Hit]] | None] = field(default_factory=list)


def search_lists(
    index: VectorIndex, collection: str, requests: Sequence[SearchRequest]
) -> tuple[list[list[Hit]], list[dict[str, list[Hit]] | None]]:
    """``index.search`` with each vector's own answer kept: a hybrid request goes as one
    request per fused vector (``rank_fusion.split_hybrid``, as the back-ends send it) and
    is fused here as they fuse it. Returns the answers and, per request, its ranked
    answers by vector (None for a multivector rescore, which the index does itself)."""

    def fused_here(req: SearchRequest) -> bool:
        return req.using == HYBRID and not req.rescore

    flat: list[SearchRequest] = []
    for req in requests:
        flat += split_hybrid([req])[0] if fused_here(req) else [req]
    answers = index.search(collection, flat)
    out: list[list[Hit]] = []
    lists: list[dict[str, list[Hit]] | None] = []
    pos = 0
    for req in requests:
        if fused_here(req):
            own = answers[pos : pos + len(req.hybrid)]
            out += join_hybrid([req], [len(own)], own)
            lists.append(dict(zip(req.hybrid, own)))
            pos += len(own)
        else:
            out.append(answers[pos])
            lists.append({req.using: answers[pos]} if req.using != HYBRID else None)
            pos += 1
    return out, lists


def default_vector(names: Sequence[str], requested: str | None = None) -> str:
    """The vector to search: the requested one, else hybrid when there are several."""
    if requested:
        return requested
    return HYBRID if len(names) > 1 else names[0]
