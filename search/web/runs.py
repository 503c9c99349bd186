"""Evaluation run folders as the viewer shows them: metrics, and per query the stage-1
and stage-2 rankings next to the relevant items, with titles and images."""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

from retrieval.atomic import read_json
from retrieval.errors import SearchError, UsageError
from retrieval.types import Product

log = logging.getLogger(__name__)
RERUN = "re-run the evaluation that wrote this folder"


def find_runs(root: Path, limit: int = 500) -> list[dict[str, Any]]:
    """Run folders (those holding metrics.json and settings.json) below ``root``."""
    out = []
    if not root.exists():
        return out
    for metrics in sorted(root.rglob("metrics.json"))[:limit]:
        folder = metrics.parent
        settings = folder / "settings.json"
        if not settings.exists():
            continue
        try:
            meta = read_json(settings, RERUN)
        except (SearchError, OSError) as exc:  # one damaged run must not hide the others
            log.warning("%s", exc)
            continue
        out.append(
            {
                "path": str(folder.relative_to(root)),
                "dataset": meta.get("dataset"),
                "vector": meta.get("vector"),
                "reranker": meta.get("reranker"),
                "k": meta.get("k"),
                "created": meta.get("created"),
            }
        )
    return out


def read_trec_run(path: Path, depth: int) -> dict[str, list[tuple[str, float]]]:
    """``qid Q0 doc rank score tag`` lines as ranked (doc, score) lists, first ``depth``."""
    rows: dict[str, list[tuple[int, str, float]]] = defaultdict(list)
    if not path.exists():
        return {}
    for lineno, parts in _lines(path):
        if len(parts) >= 5:
            try:
                rows[parts[0]].append((int(parts[3]), parts[2], float(parts[4])))
            except ValueError as exc:
                raise UsageError(f"damaged file {path}:{lineno}; {RERUN}") from exc
    return {q: [(d, s) for _, d, s in sorted(r)[:depth]] for q, r in rows.items()}


def read_qrels(path: Path) -> dict[str, set[str]]:
    """``qid 0 doc rel`` lines as the set of relevant docs per query."""
    rel: dict[str, set[str]] = defaultdict(set)
    if not path.exists():
        return rel
    for lineno, parts in _lines(path):
        try:
            if len(parts) >= 4 and int(parts[3]) > 0:
                rel[parts[0]].add(parts[2])
        except ValueError as exc:
            raise UsageError(f"damaged file {path}:{lineno}; {RERUN}") from exc
    return rel


def _lines(path: Path) -> list[tuple[int, list[str]]]:
    """Whitespace-split lines of a text artifact; bytes that are not UTF-8 are one line."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"damaged file {path} (not UTF-8 text); {RERUN}") from exc
    return [(i, line.split()) for i, line in enumerate(text.splitlines(), start=1)]


class RunBrowser:
    """Loads run folders below a root; caches each dataset's products by id."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._products: dict[str, dict[str, Product]] = {}

    def folder(self, rel: str) -> Path:
        path = (self.root / rel).resolve()
        if self.root not in path.parents and path != self.root:
            raise UsageError("run path outside the runs folder")
        if not (path / "metrics.json").is_file() or not (path / "settings.json").is_file():
            raise UsageError(f"no run at {rel}")
        return path

    def products(self, settings: dict[str, Any]) -> dict[str, Product]:
        """Every product of the run's dataset (gallery and queries) by id."""
        key = str(settings.get("dataset_path"))
        if key not in self._products:
            from retrieval.data import open_dataset

            try:
                ds = open_dataset(key, format=settings.get("format"))
            except SearchError:
                self._products[key] = {}
                return {}
            table = {p.id: p for p in ds.products()}
            for q in ds.queries(None):
                table.setdefault(q.product.id, q.product)
            self._products[key] = table
        return self._products[key]

    def load(self, run_path: str, depth: int = 10, limit: int = 300) -> dict[str, Any]:
        """Metrics and the first ``limit`` queries of a run, each with both rankings."""
        folder = self.folder(run_path)
        settings = read_json(folder / "settings.json", RERUN)
        metrics = read_json(folder / "metrics.json", RERUN)
        qrels = read_qrels(folder / "qrels.txt")
        s1 = read_trec_run(folder / "stage1.run", depth)
        s2 = read_trec_run(folder / "stage2.run", depth)
        products = self.products(settings)

        def item(doc: str, score: float | None, rel: set[str]) -> dict[str, Any]:
            p = products.get(doc)
            return {
                "id": doc,
                "score": score,
                "title": p.title if p else "",
                "image": p.image_path if p else None,
                "relevant": doc in rel,
            }

        queries = []
        for qid in sorted(qrels)[:limit]:
            rel = qrels[qid]
            q = products.get(qid)
            row1 = [item(d, s, rel) for d, s in s1.get(qid, [])]
            row2 = [item(d, s, rel) for d, s in s2.get(qid, [])]
            queries.append(
                {
                    "id": qid,
                    "title": q.title if q else "",
                    "image": q.image_path if q else None,
                    "relevant": [item(d, None, rel) for d in sorted(rel)],
                    "stage1": row1,
                    "stage2": row2,
                    "stage1_top1_ok": bool(row1) and row1[0]["relevant"],
                    "stage2_top1_ok": bool(row2) and row2[0]["relevant"],
                }
            )
        return {"path": run_path, "settings": settings, "metrics": metrics, "queries": queries}
