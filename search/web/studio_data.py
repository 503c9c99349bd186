"""A match run folder as the studio reads it (``search.match.artifacts``): ``run.json``,
``listings.jsonl`` and ``edges.jsonl``, checked line by line.

A folder without ``run.json`` is not a match run (or one from before format 1); a
``run.json`` of a format or kind this version does not know is refused; a damaged line
is one error naming the file and line. Everything is plain JSON: nothing from the
folder is unpickled or executed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrieval.data import records
from retrieval.errors import SearchError, UsageError
from search.match.artifacts import EDGES, LISTINGS, read_run


class RunRefused(UsageError):
    """A run folder the studio cannot open (HTTP 400 / one CLI line)."""


@dataclass(frozen=True)
class Edge:
    """One scored candidate pair (``a < b``). ``scores`` and ``contrib`` are kept as read
    (only the explain view reads them, through ``numbers``): a large run opens faster."""

    a: str
    b: str
    score: float | None
    scores: dict[str, Any]
    matched: bool
    rule: str | None
    contrib: dict[str, Any] | None = None
    margin: float | None = None


@dataclass
class RunData:
    """What a run folder holds: its meta, listings by id (file order) and edges."""

    folder: Path
    meta: dict[str, Any]
    listings: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)

    @property
    def labels_path(self) -> Path:
        return self.folder / "labels.jsonl"


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def numbers(value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        return {}
    out = {str(k): number(v) for k, v in value.items()}
    return {k: v for k, v in out.items() if v is not None}


def read_meta(folder: Path) -> dict[str, Any]:
    """``run.json`` (``search.match.artifacts.read_run``: a known format and kind)."""
    try:
        return read_run(folder)
    except SearchError as exc:
        raise RunRefused(str(exc)) from None


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) per non-empty line; a missing file or a bad line refuses."""
    if not path.is_file():
        raise RunRefused(f"{path.parent}: {path.name} missing; re-run search match")
    try:
        yield from records.read_jsonl(path)
    except UsageError as exc:
        raise RunRefused(f"damaged file {exc}") from None


def _listing(path: Path, lineno: int, row: dict[str, Any]) -> dict[str, Any]:
    pid = row.get("id")
    if not isinstance(pid, str) or not pid:
        raise RunRefused(f"damaged file {path}:{lineno} (no string id)")

    def text(key: str) -> str | None:
        value = row.get(key)
        return None if value is None else str(value)

    return {
        "id": pid,
        "title": text("title") or "",
        "image": text("image"),
        "price": text("price"),
        "group": text("group"),
    }


def _edge(path: Path, lineno: int, row: dict[str, Any], ids: dict[str, Any]) -> Edge:
    a, b = row.get("a"), row.get("b")
    if not isinstance(a, str) or not isinstance(b, str) or a not in ids or b not in ids:
        raise RunRefused(f"damaged file {path}:{lineno} (an end is not a listed id)")
    if a == b:
        raise RunRefused(f"damaged file {path}:{lineno} (a listing paired with itself)")
    a, b = sorted((a, b))
    contrib, scores, rule = row.get("contrib"), row.get("scores"), row.get("rule")
    return Edge(
        a=a,
        b=b,
        score=number(row.get("score")),
        scores=scores if isinstance(scores, dict) else {},
        matched=row.get("matched") is True,
        rule=None if rule is None else str(rule),
        contrib=contrib if isinstance(contrib, dict) else None,
        margin=number(row.get("margin")),
    )


def load_run(folder: Path) -> RunData:
    """A run folder read whole; ``RunRefused`` (one line) when it is not one."""
    folder = Path(folder)
    meta = read_meta(folder)
    data = RunData(folder=folder, meta=meta)
    lpath = folder / LISTINGS
    for lineno, row in read_jsonl(lpath):
        item = _listing(lpath, lineno, row)
        if item["id"] in data.listings:
            raise RunRefused(f"damaged file {lpath}:{lineno} (id {item['id']!r} twice)")
        data.listings[item["id"]] = item
    epath = folder / EDGES
    seen: set[tuple[str, str]] = set()
    for lineno, row in read_jsonl(epath):
        edge = _edge(epath, lineno, row, data.listings)
        if (edge.a, edge.b) in seen:  # the contract says deduplicated; keep the first
            continue
        seen.add((edge.a, edge.b))
        data.edges.append(edge)
    return data
