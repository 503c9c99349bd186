"""A cold-start review folder (``search review CATALOGUE --out DIR``) on disk.

``candidates.npz`` keeps what stage 1 found once, so the studio reopens the queue without
the index: the directed candidate edges (``src``, ``dst`` rows of ``listings.jsonl``),
their cosines (``sim:<name>``) and the pair model's feature matrix ``x``; read back with
``allow_pickle=False`` and checked for shape. ``run.json`` (kind ``review``) carries the
queue's settings under ``"review"``; ``edges.jsonl``, ``matcher.json`` and its LightGBM
text files are rewritten after every fit (``write_state``), each whole or not at all.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.atomic import write_bytes
from retrieval.errors import SearchError
from retrieval.types import Product
from search.match.artifacts import (
    LISTINGS,
    edge_rows,
    read_jsonl,
    read_run,
    write_edges,
    write_listings,
    write_run_manifest,
)
from search.match.edges import MEAN, Edges
from search.match.matcher import Matcher
from search.match.pair_model import columns, save_models

CANDIDATES = "candidates.npz"
MATCHER_FILE, PAIR_FILE = "matcher.json", "matcher.pair.txt"
SIM = "sim:"


@dataclass
class Candidates:
    """Stage 1's candidate edges of a catalogue and the pair model's features of them."""

    products: list[Product]
    edges: Edges
    x: np.ndarray
    encoders: list[str]
    weights: dict[str, float]
    collection: str
    k: int = 20

    @property
    def n(self) -> int:
        return len(self.products)

    @property
    def columns(self) -> list[str]:
        return columns(list(self.weights))

    def save(self, out: Path) -> None:
        """``listings.jsonl`` and ``candidates.npz``."""
        write_listings(out, self.products)
        buf = io.BytesIO()
        sims = {SIM + k: np.asarray(v, np.float32) for k, v in self.edges.sims.items()}
        src, dst = self.edges.src.astype(np.int64), self.edges.dst.astype(np.int64)
        np.savez(buf, src=src, dst=dst, x=self.x.astype(np.float32), **sims)
        write_bytes(out / CANDIDATES, buf.getvalue())

    @classmethod
    def load(cls, out: Path, meta: dict[str, Any]) -> Candidates:
        """The candidates of a review folder (``meta``: its ``run.json``)."""
        settings = meta.get("review")
        if not isinstance(settings, dict):
            raise SearchError(f"{out}: run.json has no review settings; run search review again")
        products = [
            Product(str(r["id"]), str(r.get("title") or ""), fields={"price": r.get("price")})
            for r in read_jsonl(out / LISTINGS)
        ]
        try:
            with np.load(out / CANDIDATES, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            msg = f"cannot read {out / CANDIDATES}: {exc}; run search review again"
            raise SearchError(msg) from None
        weights = {str(k): float(v) for k, v in settings["weights"].items()}
        src, dst, x = arrays.get("src"), arrays.get("dst"), arrays.get("x")
        sims = {k[len(SIM) :]: v for k, v in arrays.items() if k.startswith(SIM)}
        cols = columns(list(weights))
        ok = src is not None and dst is not None and x is not None and len(src) == len(dst)
        ok = ok and x.shape == (len(src), len(cols)) and MEAN in sims
        ok = ok and all(len(v) == len(src) for v in sims.values())
        ok = ok and (not len(src) or max(src.max(), dst.max()) < len(products))
        if not ok:
            raise SearchError(
                f"{out / CANDIDATES} does not fit {out / LISTINGS}; run search review again"
            )
        edges = Edges(src.astype(np.int64), dst.astype(np.int64), sims)
        return cls(
            products, edges, x.astype(np.float64), list(settings["encoders"]), weights,
            str(meta.get("collection") or ""), int(settings.get("k", 20)),
        )  # fmt: skip

    def settings(self, batch: int, seed: int) -> dict[str, Any]:
        return {"encoders": self.encoders, "weights": self.weights, "k": self.k,
                "batch": batch, "seed": seed}  # fmt: skip


def open_review(out: Path) -> tuple[Candidates, dict[str, Any]]:
    """A review folder's candidates and ``run.json``; another kind of run is refused."""
    meta = read_run(out)
    if meta.get("kind") != "review":
        raise SearchError(f"{out} is a match run, not a search review folder")
    return Candidates.load(out, meta), meta


def write_state(
    out: Path,
    cands: Candidates,
    matcher: Matcher | None,
    boosters: Sequence[Any],
    threshold: float,
    extra: dict[str, Any],
    info: dict[str, Any],
) -> None:
    """The folder after a fit: ``edges.jsonl`` with the current scores, the matcher and
    its models (when there is one), and ``run.json``."""
    edges, ids = cands.edges, [p.id for p in cands.products]
    primary = matcher.chosen().primary if matcher is not None else MEAN
    names = [*cands.weights, MEAN, primary]
    sims = {s: edges.sims[s] for s in dict.fromkeys(names)}
    kept = edges.sims[primary] >= (threshold if matcher is not None else np.inf)
    matched = set(zip(edges.src[kept].tolist(), edges.dst[kept].tolist()))
    why = {e: {"rule": primary} for e in matched}
    write_edges(out, edge_rows(ids, edges.src, edges.dst, sims, primary, matched, why))
    if matcher is not None:
        assert matcher.pair is not None
        matcher.pair.files = save_models(boosters, matcher.pair.paths(out))
        matcher.save(out / MATCHER_FILE)
    write_run_manifest(
        out,
        dataset=str(info.get("dataset") or ""),
        source=str(info.get("source") or ""),
        collection=cands.collection,
        matcher=MATCHER_FILE if matcher is not None else None,
        primary=primary,
        thresholds={primary: threshold if matcher is not None else np.inf},
        rule=matcher.chosen().to_json() if matcher is not None else {},
        labelled=False,
        listings=cands.n,
        kind="review",
        extra=extra,
    )
