"""Machine description and result tables (rich and Markdown) for the index benchmark."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.table import Table

COLUMNS = ("back-end", "hnsw_ef", "p50 ms", "p95 ms", "mean ms", "batched q/s", "recall@k", "load")


def shared_data(name: str) -> Path:
    """The shared real data set ``name`` (a folder or file under ``shared/data``):
    ``$SEARCH_SHARED_DATA/NAME``, else ``shared/data/NAME`` beside this checkout or any
    folder above it (a git worktree may sit deeper than the main checkout); the first
    candidate when none exists, so the error names a path."""
    env = os.environ.get("SEARCH_SHARED_DATA")
    roots = [Path(env)] if env else [p / "shared" / "data" for p in Path(__file__).parents]
    return next((root / name for root in roots if (root / name).exists()), roots[0] / name)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def machine_info() -> dict[str, Any]:
    """Cores, CPU model and the versions that decide the figures."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    mem = ""
    try:
        first = Path("/proc/meminfo").read_text().splitlines()[0]
        mem = f"{int(first.split()[1]) / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory": mem,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": _version("numpy"),
        "qdrant-edge-py": _version("qdrant-edge-py"),
        "loadavg_start": load_average(),
    }


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages: other work on a shared machine skews timings."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def _cells(row: dict[str, Any]) -> list[str]:
    return [
        row["backend"],
        "exact" if row["ef"] is None else str(row["ef"]),
        f"{row['p50_ms']:.2f}",
        f"{row['p95_ms']:.2f}",
        f"{row['mean_ms']:.2f}",
        f"{row['batch_qps']:,.0f}",
        f"{row['recall']:.4f}",
        _load(row),
    ]


def _load(entry: dict[str, Any]) -> str:
    """The 1-minute load average when the entry was measured (other jobs skew timings)."""
    load = entry.get("load_1m")
    return f"{load[0]:.1f}" if load else "?"


def _build_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    for label, b in report["build"].items():
        lines.append(
            f"{label}: upsert {b['upsert_pts_per_s']:,.0f} points/s ({b['upsert_s']:.1f} s), "
            f"optimize (HNSW build) {b['optimize_s']:.1f} s; "
            f"{b['indexed_vectors']:,} of {b['points']:,} vectors indexed, "
            f"{b['segments']} segment(s); load {_load(b)}"
        )
    return lines


def _header(report: dict[str, Any]) -> str:
    p, m = report["params"], report["machine"]
    return (
        f"{p['n']:,} x {p['dim']} vectors ({p['clusters']:,} clusters, {p['categories']} "
        f"categories, noise {p['noise']}), {p['queries']:,} queries, k={p['k']}, "
        f"batches of {p['batch']}; {m['cpu']}, {m['usable_cores']} cores"
    )


def render_table(report: dict[str, Any]) -> Table:
    """The results as a rich table, build figures in the caption."""
    table = Table(title=_header(report), caption="\n".join(_build_lines(report)))
    for col in COLUMNS:
        table.add_column(col, justify="left" if col == "back-end" else "right")
    for row in report["results"]:
        table.add_row(*_cells(row))
    return table


def write_markdown(report: dict[str, Any], path: Path) -> None:
    """The results as a Markdown page: machine, parameters, build figures, latency table."""
    m, p, cfg = report["machine"], report["params"], report["index_config"]
    out = [
        "# Index benchmark",
        "",
        _header(report) + ".",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), {m['memory']} "
        f"RAM; Python {m['python']}, numpy {m['numpy']}, qdrant-edge-py {m['qdrant-edge-py']}. "
        f"Load average (1/5/15 min) at start {m['loadavg_start']}, at end {m['loadavg_end']}.",
        "",
        f"Index: hnsw_m={cfg['hnsw_m']}, ef_construct={cfg['hnsw_ef_construct']}, "
        f"full_scan_threshold_kb={cfg['full_scan_threshold_kb']}; int8 rows: scalar "
        f"quantization, rescore={cfg['rescore']}, oversampling={cfg['oversampling']}.",
        "",
        "## Build",
        "",
        *[f"- {line}" for line in _build_lines(report)],
        "",
        "## Queries",
        "",
        "Latency: one `SearchRequest` per `search()` call, through the `VectorIndex` API "
        "(payload `id` returned). Batched: "
        f"`search()` with {p['batch']} requests per call. Recall@{p['k']} against exact search. "
        "Load: the 1-minute load average after the row was measured.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "| " + " | ".join("---" if c == "back-end" else "---:" for c in COLUMNS) + " |",
        *["| " + " | ".join(_cells(row)) + " |" for row in report["results"]],
        "",
        f"Command: `{report['command']}` (wall time {report['wall_s'] / 60:.1f} min).",
        "",
    ]
    path.write_text("\n".join(out))
