"""What ``search match`` writes: ``matches.csv`` (Kaggle submission layout: posting_id,
then its matches space-separated, itself first) and ``matches.jsonl`` (each listing's
matches with their scores and the part of the rule that admitted them), both written
whole at the end (a killed run leaves the old files; a re-run writes the same ones).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from retrieval.atomic import write_text
from search.match.edges import Edges
from search.match.edgeset import EdgeSet
from search.match.rules import Rule, Sets, kept_edges


def explain(edges: Edges, rule: Rule, sets: Sets, n: int) -> dict[tuple[int, int], dict]:
    """Why each matched pair is there: the first thresholded score it reaches, else
    ``min2`` (kept as the nearest) or ``group`` (joined by group consistency)."""
    keys = edges.keys(n)
    order = np.argsort(keys)
    kept = kept_edges(edges, rule)
    out: dict[tuple[int, int], dict] = {}
    for i, js in sets.items():
        for j in js:
            pos = int(np.searchsorted(keys[order], i * n + j)) if len(keys) else 0
            e = int(order[pos]) if pos < len(keys) and keys[order][pos] == i * n + j else -1
            if e < 0:
                out[(i, j)] = {"rule": "group", "score": None}
                continue
            why = next(
                (s for s, t in rule.thresholds.items() if edges.sims[s][e] >= t),
                "min2" if kept[e] else "group",
            )
            out[(i, j)] = {
                "rule": why,
                "score": round(float(edges.sims[rule.primary][e]), 6),
                "scores": {s: round(float(v[e]), 6) for s, v in edges.sims.items()},
            }
    return out


def write_matches(
    es: EdgeSet, sets: Sets, why: dict[tuple[int, int], dict], out: Path, self_match: bool
) -> tuple[Path, Path]:
    """``matches.csv`` and ``matches.jsonl``, both written atomically."""
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(["posting_id", "matches"])
    lines = []
    for i in es.queries.tolist():
        pid = es.products[i].id
        js = sorted(sets.get(i, ()), key=lambda j: (-(why[(i, j)]["score"] or 0.0), j))
        ids = [es.products[j].id for j in js]
        writer.writerow([pid, " ".join(([pid] if self_match else []) + ids)])
        matches = [{"id": es.products[j].id, **why[(i, j)]} for j in js]
        lines.append(json.dumps({"id": pid, "matches": matches}))
    out.mkdir(parents=True, exist_ok=True)
    csv_path = write_text(out / "matches.csv", rows.getvalue())
    jsonl_path = write_text(out / "matches.jsonl", "\n".join(lines) + ("\n" if lines else ""))
    return csv_path, jsonl_path
