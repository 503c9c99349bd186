"""What ``search match`` writes: ``matches.csv`` (Kaggle submission layout: posting_id,
then its matches space-separated, itself first) and ``matches.jsonl`` (each listing's
matches with their scores and the part of the rule that admitted them), both written
whole at the end (a killed run leaves the old files; a re-run writes the same ones).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from retrieval.atomic import write_text
from search.match.artifacts import (
    edge_rows,
    top_contrib,
    write_edges,
    write_listings,
    write_run_manifest,
)
from search.match.edges import MEAN, Edges
from search.match.edgeset import EdgeSet
from search.match.rules import Rule, Sets, kept_edges


def explain(
    edges: Edges,
    rule: Rule,
    sets: Sets,
    n: int,
    contrib: Mapping[int, np.ndarray] | None = None,
    cols: Sequence[str] = (),
) -> dict[tuple[int, int], dict]:
    """Why each matched pair is there: the first thresholded score it reaches, else
    ``min2`` (kept as the nearest) or ``group`` (joined by group consistency); with the
    rule's primary score, every score the rule reads, the ``margin`` over the threshold
    that admitted it, and its pair model's ``contrib`` (``pair_contributions`` rows by
    index into ``edges``, where given)."""
    pairs = [(i, j) for i, js in sets.items() for j in js]
    if not pairs:
        return {}
    i, j = np.array(pairs, dtype=np.int64).T
    keys = edges.keys(n)
    order = np.argsort(keys)
    want = i * n + j
    pos = np.minimum(np.searchsorted(keys[order], want), max(len(keys) - 1, 0))
    found = keys[order][pos] == want if len(keys) else np.zeros(len(want), dtype=bool)
    e = np.where(found, order[pos], -1)
    kept = kept_edges(edges, rule)
    why = np.where(found & kept[np.maximum(e, 0)], "min2", "group").astype(object)
    for name in reversed(list(rule.thresholds)):  # the first listed score wins
        hit = found & (edges.sims[name][np.maximum(e, 0)] >= rule.thresholds[name])
        why[hit] = name
    scores = {
        s: np.round(edges.sims[s][np.maximum(e, 0)].astype(np.float64), 6) for s in rule.scores
    }
    out: dict[tuple[int, int], dict] = {}
    for k, pair in enumerate(pairs):
        if not found[k]:
            out[pair] = {"rule": "group", "score": None}
            continue
        out[pair] = {
            "rule": why[k],
            "score": float(scores[rule.primary][k]),
            "scores": {s: float(v[k]) for s, v in scores.items()},
        }
        floor = rule.thresholds.get(why[k]) if why[k] != "min2" else rule.min2
        if floor is not None:
            score = rule.primary if why[k] == "min2" else why[k]
            out[pair]["margin"] = round(float(edges.sims[score][e[k]]) - floor, 6)
        row = contrib.get(int(e[k])) if contrib is not None else None
        if row is not None:
            out[pair]["contrib"] = top_contrib(row, cols)
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


def write_run_files(
    es: EdgeSet,
    edges: Edges,
    rule: Rule,
    sets: Sets,
    why: dict[tuple[int, int], dict],
    out: Path,
    *,
    source: str,
    dataset: str,
    matcher: str | None,
    contrib: Mapping[int, np.ndarray] | None = None,
    cols: Sequence[str] = (),
    labels: str | None = None,
    listings: np.ndarray | None = None,
) -> None:
    """The studio's files of a match run (``search.match.artifacts``): ``run.json`` (with
    the ``labels`` file whose verdicts it kept, if any), ``listings.jsonl`` (the rows
    ``listings``, default all) and ``edges.jsonl`` (the edges the rule decided on)."""
    names = [*rule.scores, *es.weights, MEAN]
    sims = {s: edges.sims[s] for s in dict.fromkeys(names) if s in edges.sims}
    matched = {(i, j) for i, js in sets.items() for j in js}
    ids = [p.id for p in es.products]
    rows = edge_rows(ids, edges.src, edges.dst, sims, rule.primary, matched, why, contrib, cols)
    write_edges(out, rows)
    shown = range(es.n) if listings is None else sorted(set(listings.tolist()))
    write_listings(out, [es.products[i] for i in shown])
    write_run_manifest(
        out,
        dataset=dataset,
        source=source,
        collection=es.collection,
        matcher=matcher,
        primary=rule.primary,
        thresholds=rule.thresholds,
        rule=rule.to_json(),
        labelled=any(p.group is not None for p in es.products),
        listings=len({es.products[i].id for i in shown}),
        extra={"labels": labels},
    )


def write_split_run(
    es: EdgeSet, rule: Rule, sets: Sets, out: Path, *, dataset: str, matcher: str
) -> None:
    """A match run folder of one split's queries (``search eval --match-against
    catalogue``'s test split): their matches, the edges touching them, and the listings
    of those edges; no contributions (the job's ``--explain-pairs`` keeps those)."""
    q = np.zeros(es.n, dtype=bool)
    q[es.queries] = True
    edges = es.query_edges(rule)
    edges = edges.select(q[edges.src] | q[edges.dst])
    why = explain(edges, rule, sets, es.n)
    write_matches(es, sets, why, out, True)
    mates = [j for i in es.queries.tolist() for j in sets.get(i, ())]
    rows = np.r_[es.queries, edges.src, edges.dst, np.array(mates, dtype=np.int64)]
    write_run_files(
        es, edges, rule, sets, why, out, source=dataset, dataset=dataset, matcher=matcher,
        listings=rows,
    )  # fmt: skip
