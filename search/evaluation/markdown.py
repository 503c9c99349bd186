"""The Markdown report of one evaluation, and the table helpers it shares with ablation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from search.evaluation.scoring import EvalResult, Scored


def fmt(value: Any, digits: int = 4) -> str:
    """A table cell: floats rounded, None as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; numeric columns right-aligned."""
    align = [
        "---:"
        if rows and all(isinstance(r[i], (int, float)) or r[i] is None for r in rows)
        else "---"
        for i in range(len(headers))
    ]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += [
        "| " + " | ".join(c if isinstance(c, str) else fmt(c) for c in r) + " |" for r in rows
    ]
    return "\n".join(lines)


def ranking_rows(metrics: dict[str, float]) -> list[tuple[str, float | None, float | None]]:
    """(metric, stage 1, stage 2) for every ranking metric either stage has."""
    names: list[str] = []
    for key in metrics:
        stage, _, name = key.partition("/")
        if stage in ("stage1", "stage2") and name.split("@")[0] in _RANKING and name not in names:
            names.append(name)
    names.sort(key=_order)
    return [(n, metrics.get(f"stage1/{n}"), metrics.get(f"stage2/{n}")) for n in names]


_RANKING = ("recall", "precision", "mrr", "ndcg", "map")


def _order(name: str) -> tuple[int, int]:
    kind, _, k = name.partition("@")
    return _RANKING.index(kind), int(k) if k else 10**9


def render_report(result: EvalResult, scored: Scored) -> str:
    """The whole ``report.md``."""
    s, m = result.settings, result.metrics
    parts = [f"# Evaluation: {s['dataset']} · split {s['split']}", ""]
    keys = ("dataset_path", "collection", "encoders", "vector", "fusion", "k", "n", "reranker")
    parts.append(table(["setting", "value"], [(key, _text(s[key])) for key in keys if key in s]))
    stage2 = "none: the stage-1 top n passed through" if s["reranker"] == "none" else s["reranker"]
    parts += ["", f"Stage 2: **{stage2}**.", "", "## Ranking, stage by stage", ""]
    parts += _ranking(m, s["k"])
    parts += ["", "## Match sets", ""] + _match_sets(scored, s)
    parts += ["", "## Latency and throughput", "", _latency(m, s)]
    parts += ["", "## Queries and items", ""] + _counts(result, scored)
    parts += ["", "## Plots", "", "![recall@k per stage](recall_at_k.png)", ""]
    parts += ["![F1 against threshold](f1_threshold.png)", ""]
    return "\n".join(parts)


def _ranking(m: dict[str, float], k: int) -> list[str]:
    rows = [
        (name, a, b, None if a is None or b is None else b - a) for name, a, b in ranking_rows(m)
    ]
    return [
        table(["metric", "stage 1", "stage 2", "change"], rows),
        "",
        f"Stage 2 reranks the stage-1 top {k}: it cannot pass the stage-1 recall@{k} = "
        f"**{fmt(m.get('stage2/recall_ceiling'))}** (its ceiling). Averages over "
        f"{int(m['queries/evaluated'])} queries.",
    ]


def _match_sets(scored: Scored, s: dict[str, Any]) -> list[str]:
    intro = (
        f"Threshold swept on **{s['tune_split']}**, applied to **{s['split']}**; "
        "*+nearest* always keeps the best candidate. "
        + ("Every posting matches itself (Shopee F1)." if s.get("self_match") else "")
    )
    rows = [
        (
            o.stage.replace("stage", "stage "),
            "threshold +nearest" if o.keep_nearest else "threshold",
            o.threshold,
            o.scores.f1,
            o.scores.precision,
            o.scores.recall,
            float(o.tune.f1.max()),
        )
        for o in scored.matches
    ]
    headers = ["stage", "rule", "threshold", "F1", "precision", "recall"]
    return [intro, "", table([*headers, f"F1 on {s['tune_split']}"], rows)]


def _counts(result: EvalResult, scored: Scored) -> list[str]:
    m = result.metrics
    counts = [
        (key, int(v))
        for key, v in m.items()
        if key.split("/")[0] in ("queries", "skipped", "items")
    ]
    parts = [table(["count", "value"], counts), ""]
    parts += [f"- {note}" for note in result.notes]
    for reason, ids in scored.skipped.items():
        if ids:
            more = f" … and {len(ids) - 20} more" if len(ids) > 20 else ""
            parts.append(f"- skipped ({reason}): {', '.join(ids[:20])}{more}")
    return parts


def _latency(m: dict[str, float], s: dict[str, Any]) -> str:
    rows = []
    for stage in ("stage1", "stage2"):
        if f"{stage}/latency_p50_ms" not in m:
            continue
        rows.append(
            (
                stage.replace("stage", "stage "),
                m[f"{stage}/latency_p50_ms"],
                m[f"{stage}/latency_p95_ms"],
                m[f"{stage}/latency_mean_ms"],
                m[f"{stage}/qps"],
            )
        )
    text = table(["stage", "p50 ms/query", "p95 ms/query", "mean ms/query", "queries/s"], rows)
    return (
        text + f"\n\nQueries ran in batches of {s['batch_size']}; a query's latency is its batch's "
        "time divided by the batch size. Stage 1 per query: "
        f"{fmt(m.get('stage1/encode_ms_per_query'), 2)} ms encoding, "
        f"{fmt(m.get('stage1/search_ms_per_query'), 2)} ms index search."
    )


def _text(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)
