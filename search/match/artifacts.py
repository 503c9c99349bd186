"""The match run folder beside ``matches.csv`` / ``matches.jsonl``: what the studio and
``search explain`` open. Each file is written whole or not at all; plain JSON / JSONL.

- ``run.json``: ``{"format": 1, "kind": "match" | "review", "version", "dataset",
  "source", "collection", "matcher", "primary", "threshold", "thresholds", "rule",
  "labelled", "listings", "created"}`` (a switched-off threshold is ``null``);
- ``listings.jsonl``: ``{"id", "title", "image", "price", "group"}`` per listing;
- ``edges.jsonl``: every candidate pair scored, undirected and deduplicated (``a < b``
  by id): ``{"a", "b", "score", "scores", "matched", "rule"}``, with ``"contrib"`` on the
  pair model's edges explained (``top_contrib``; a match run keeps those of the pairs
  nearest its threshold) and ``"margin"`` where a threshold admitted it.

The writers take plain products, arrays and dicts, so a review folder
(``search.match.review``) writes the same files as ``search match``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.atomic import write_text
from retrieval.data import records
from retrieval.errors import SearchError
from retrieval.types import Product

FORMAT = 1
KINDS = ("match", "review")
TOP = 8  # feature contributions kept per edge; the others summed as "rest"
RUN, LISTINGS, EDGES, LABELS = "run.json", "listings.jsonl", "edges.jsonl", "labels.jsonl"
NOT_A_RUN = "not a match run, or one from before format 1: re-run search match"


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("product-search")
    except PackageNotFoundError:
        return "unknown"


def finite(value: float | None) -> float | None:
    """A float for JSON, or None where it is missing or not finite (a switched-off threshold)."""
    return float(value) if value is not None and math.isfinite(value) else None


def absolute(path: str | None) -> str | None:
    """A path that names an existing file or folder, made absolute; anything else as is."""
    if path is None or not Path(path).exists():
        return path
    return str(Path(path).resolve())


def write_run_manifest(
    out: Path,
    *,
    dataset: str,
    source: str,
    collection: str,
    matcher: str | None,
    primary: str,
    thresholds: Mapping[str, float],
    rule: Mapping[str, Any],
    labelled: bool,
    listings: int,
    kind: str = "match",
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """``run.json``: what the run matched, with which rule and thresholds."""
    if kind not in KINDS:
        raise ValueError(f"run kind {kind!r} is not one of {KINDS}")
    manifest = {
        "format": FORMAT,
        "kind": kind,
        "version": package_version(),
        "dataset": dataset,
        "source": absolute(source),  # the studio finds images from any working folder
        "collection": collection,
        "matcher": absolute(matcher),
        "primary": primary,
        "threshold": finite(thresholds.get(primary)),
        "thresholds": {k: finite(v) for k, v in thresholds.items()},
        "rule": _jsonable(rule),
        "labelled": bool(labelled),
        "listings": int(listings),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    return write_text(Path(out) / RUN, json.dumps(manifest, indent=2) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return finite(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def listing_row(p: Product) -> dict[str, Any]:
    price = p.fields.get("price")
    return {
        "id": p.id,
        "title": p.title,
        "image": p.image_path,
        "price": None if price is None or price == "" else str(price),
        "group": p.group,
    }


def write_listings(out: Path, products: Iterable[Product]) -> Path:
    """``listings.jsonl``: one line per listing (the first of a repeated id)."""
    seen: set[str] = set()
    lines = []
    for p in products:
        if p.id not in seen:
            seen.add(p.id)
            lines.append(json.dumps(listing_row(p), ensure_ascii=False) + "\n")
    return write_text(Path(out) / LISTINGS, "".join(lines))


def top_contrib(row: np.ndarray, cols: Sequence[str], k: int = TOP) -> dict[str, float]:
    """An edge's ``k`` largest feature contributions by size, the others summed as
    ``rest``, the ``bias`` and the ``logit`` they all add up to (``row``: one
    ``pair_contributions`` row, the bias last)."""
    feats = row[:-1]
    order = np.argsort(-np.abs(feats), kind="stable")[:k]
    out = {cols[i]: float(feats[i]) for i in order if feats[i] != 0.0}
    out["rest"] = float(feats.sum() - sum(out.values()))
    out["bias"] = float(row[-1])
    out["logit"] = float(row.sum())
    return out


def undirected(ids: Sequence[str], src: np.ndarray, dst: np.ndarray, score: np.ndarray) -> Any:
    """Directed edges folded into pairs: per pair (lower id first) the edge with the
    higher ``score``; returns (edge indices, lower-id row, higher-id row)."""
    if not len(src):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    rank = np.empty(len(ids), dtype=np.int64)
    rank[np.argsort(np.array(ids, dtype=object), kind="stable")] = np.arange(len(ids))
    swap = rank[src] > rank[dst]
    lo, hi = np.where(swap, dst, src), np.where(swap, src, dst)
    order = np.lexsort((-np.nan_to_num(score, nan=-np.inf), rank[hi], rank[lo]))
    key = rank[lo][order] * len(ids) + rank[hi][order]
    first = np.r_[True, key[1:] != key[:-1]]
    e = order[first & (lo[order] != hi[order])]
    return e, lo[e], hi[e]


def write_edges(out: Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """``edges.jsonl``: one line per pair row (``edge_rows``)."""
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return write_text(Path(out) / EDGES, text)


def edge_rows(
    ids: Sequence[str],
    src: np.ndarray,
    dst: np.ndarray,
    sims: Mapping[str, np.ndarray],
    primary: str,
    matched: set[tuple[int, int]],
    why: Mapping[tuple[int, int], Mapping[str, Any]],
    contrib: Mapping[int, np.ndarray] | None = None,
    cols: Sequence[str] = (),
) -> Iterator[dict[str, Any]]:
    """The pair rows of directed edges (rows into ``ids``): scores rounded to 6 digits,
    ``matched`` where either direction is in the final sets, its ``rule`` and ``margin``
    from ``why`` (``search.match.output.explain``), ``contrib`` where it holds a row
    for the pair's edge (``pair_model.pair_contributions``, by edge index)."""
    e, lo, hi = undirected(ids, src, dst, sims[primary])
    for k, (i, j) in enumerate(zip(lo.tolist(), hi.tolist())):
        edge = int(e[k])
        scores = {name: _round(v[edge]) for name, v in sims.items()}
        reason = why.get((i, j)) or why.get((j, i)) or {}
        row = {
            "a": ids[i],
            "b": ids[j],
            "score": scores[primary],
            "scores": scores,
            "matched": (i, j) in matched or (j, i) in matched,
            "rule": reason.get("rule"),
        }
        if reason.get("margin") is not None:
            row["margin"] = reason["margin"]
        terms = contrib.get(edge) if contrib is not None else None
        if terms is not None:
            row["contrib"] = top_contrib(terms, cols)
        yield row


def _round(value: Any) -> float | None:
    v = float(value)
    return round(v, 6) if math.isfinite(v) else None


def read_run(run_dir: Path) -> dict[str, Any]:
    """``run.json`` of a match run or review folder; a folder without one, or of a format
    this version does not know, is one error line."""
    path = Path(run_dir) / RUN
    if not Path(run_dir).is_dir():
        raise SearchError(f"{run_dir} is not a folder: give a match run (search match --out)")
    if not path.is_file():
        raise SearchError(f"{run_dir}: {NOT_A_RUN}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SearchError(f"{path}: unreadable ({exc}); re-run search match") from None
    if not isinstance(manifest, dict):
        raise SearchError(f"{path}: {NOT_A_RUN}")
    fmt, kind = manifest.get("format"), manifest.get("kind")
    if fmt != FORMAT or kind not in KINDS:
        raise SearchError(
            f"{path}: a run of format {fmt!r} (kind {kind!r}) from version "
            f"{manifest.get('version')!r}; version {package_version()} reads format {FORMAT} "
            f"({', '.join(KINDS)}): re-run search match"
        )
    return manifest


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a run's JSONL file, each bad line one error naming it
    (``retrieval.data.records.read_jsonl``); a missing file says how to make it."""
    if not Path(path).is_file():
        raise SearchError(f"{path}: no such file; re-run search match")
    for _, row in records.read_jsonl(Path(path)):
        yield row
