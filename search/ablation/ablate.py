"""Ablation grids (``search ablate GRID.toml``): one full evaluation per cell.

The grid file is a config file (``[store]``, ``[index]``, ``[stage1]``, ``[stage2]``,
``[eval]`` set what every cell shares) plus a ``[grid]`` table::

    [grid]
    dataset = "../shared/data/abt-buy"     # required; paths are relative to the cwd
    format = "query-gallery"               # optional: force the reader
    split = "test"                         # optional: eval.split
    tune_split = "valid"                   # optional: eval.tune_split
    out = "runs/abt-grid"                  # optional; --out wins; default runs/grid-<stem>
    metrics = ["stage1/recall@10", "stage2/mrr@10", "stage2/f1"]   # optional columns
    # axes: a list each (a single value is a one-value axis); cells = their product
    encoders = [["text", "sparse"], ["sparse"]]   # encoder sets (lists of specs)
    vector = ["text", "sparse", "hybrid"]         # image | text | fused | sparse | hybrid ...
    hybrid = [["text", "sparse"]]                 # vectors fused by hybrid (default all)
    fusion = ["rrf", "dbsf"]                      # hybrid fusion inside Qdrant
    k = [10, 100]                                 # stage-1 candidates
    n = [10]                                      # kept after stage 2
    reranker = ["none", "pair-gbdt:runs/gbdt.txt"]
    blend = [0.0, 0.3]                            # stage-1 score blended into stage 2

Early-fusion weights are encoder specs: put several fused vectors in one encoder set
(``"fusion:image=0.7,text=0.3,name=fused73"``) and list their names under ``vector``,
so they share one collection. Cells with the same encoder set share one collection,
named by a hash of the dataset path and the encoder specs, indexed by the first cell.
A cell lives in ``<out>/cells/<hash of its settings>/``; one whose ``metrics.json``
exists is finished and not run again, so killing and re-running resumes. A cell that
fails with a usage error (a vector its encoders do not fill) is reported, not fatal.
The comparison goes to ``comparison.md``, ``comparison.csv`` and ``comparison.png``.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrieval.errors import UsageError
from search.collection import collection_name
from search.config import build_config, read_toml

log = logging.getLogger(__name__)
AXES = ("encoders", "vector", "hybrid", "fusion", "k", "n", "reranker", "blend")
SETTINGS = ("dataset", "format", "split", "tune_split", "out", "metrics")
STAGE = {"encoders": "stage1", "vector": "stage1", "hybrid": "stage1", "fusion": "stage1"}
STAGE |= {"k": "stage1", "n": "stage2", "reranker": "stage2", "blend": "stage2"}
DEFAULT_METRICS = [
    "stage1/recall@1",
    "stage1/recall@10",
    "stage2/recall_ceiling",
    "stage2/mrr@10",
    "stage2/ndcg@10",
    "stage2/f1",
    "stage2/f1_nearest",
    "stage1/latency_p50_ms",
    "stage1/qps",
]
CellHook = Callable[[int, int, str, str], None]


@dataclass
class Grid:
    """A parsed grid file: the shared config sections, the settings and the axes."""

    path: Path
    base: dict[str, Any]
    dataset: str
    format: str | None = None
    split: str | None = None
    tune_split: str | None = None
    out: Path | None = None
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    axes: dict[str, list[Any]] = field(default_factory=dict)

    def cells(self) -> list[dict[str, Any]]:
        """Every combination of the axes, in file order of the values."""
        names = [a for a in AXES if a in self.axes]
        return [
            dict(zip(names, combo)) for combo in itertools.product(*(self.axes[a] for a in names))
        ]


def load_grid(path: str | Path) -> Grid:
    """Read and check a grid file; unknown keys name the nearest valid one."""
    p = Path(path)
    data = read_toml(p)
    table = data.pop("grid", None)
    if not isinstance(table, dict):
        raise UsageError(f"{p}: no [grid] table (see `search ablate --help`)")
    build_config(data)  # checks the shared sections now, not in the first cell
    for key in table:
        if key not in AXES + SETTINGS:
            near = difflib.get_close_matches(key, AXES + SETTINGS, n=1)
            hint = (
                f"; did you mean {near[0]!r}?" if near else f"; valid: {', '.join(AXES + SETTINGS)}"
            )
            raise UsageError(f"{p}: unknown grid key {key!r}{hint}")
    if not table.get("dataset"):
        raise UsageError(f'{p}: [grid] needs dataset = "PATH"')
    axes = {a: _axis(p, a, table[a]) for a in AXES if a in table}
    return Grid(
        p,
        data,
        str(table["dataset"]),
        table.get("format"),
        table.get("split"),
        table.get("tune_split"),
        Path(table["out"]) if table.get("out") else None,
        list(table.get("metrics") or DEFAULT_METRICS),
        axes,
    )


def _axis(path: Path, name: str, value: Any) -> list[Any]:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise UsageError(f"{path}: grid axis {name!r} is empty")
    if name in ("encoders", "hybrid"):
        if not all(isinstance(v, list) and all(isinstance(s, str) for s in v) for v in values):
            raise UsageError(
                f'{path}: {name} must be a list of lists of specs, e.g. [["text", "sparse"]]'
            )
    elif name in ("k", "n") and not all(isinstance(v, int) and v >= 1 for v in values):
        raise UsageError(f"{path}: {name} must be whole numbers >= 1")
    return values


def cell_key(grid: Grid, cell: dict[str, Any]) -> str:
    """The folder name of a cell: a hash of everything that changes its result."""
    key = json.dumps(
        [grid.dataset, grid.format, grid.split, grid.tune_split, grid.base, cell], sort_keys=True
    )
    return hashlib.sha1(key.encode()).hexdigest()[:12]


def cell_label(cell: dict[str, Any]) -> str:
    """A short human label: the cell's axis values joined by `` · ``."""
    parts = []
    for name, value in cell.items():
        text = "+".join(value) if isinstance(value, list) else str(value)
        parts.append(text if name in ("encoders", "vector", "reranker") else f"{name}={text}")
    return " · ".join(parts)


@dataclass
class AblationResult:
    """The grid's folder, its comparison files and each cell's outcome."""

    out: Path
    rows: list[dict[str, Any]]
    files: list[Path]


def run_grid(
    grid: Grid,
    *,
    out: str | Path | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
    on_cell: CellHook | None = None,
) -> AblationResult:
    """Evaluate every unfinished cell, then write the comparison table and plot."""
    from search.ablation.comparison import write_comparison
    from search.evaluation.evaluate import evaluate_dataset

    folder = Path(out or grid.out or Path("runs") / f"grid-{grid.path.stem}")
    (folder / "cells").mkdir(parents=True, exist_ok=True)
    source = str(Path(grid.dataset).resolve())
    name = Path(grid.dataset).resolve().name
    cells = grid.cells()
    rows: list[dict[str, Any]] = []
    for i, cell in enumerate(cells, 1):
        label, cell_dir = cell_label(cell), folder / "cells" / cell_key(grid, cell)
        row: dict[str, Any] = {"cell": cell_dir.name, "label": label, **cell}
        done = cell_dir / "metrics.json"
        status = "cached" if done.exists() else "ran"
        if status == "ran":
            cfg = _cell_config(grid, cell, overrides or {})
            encoders = cfg.stage1.encoders
            try:
                evaluate_dataset(
                    cfg,
                    grid.dataset,
                    fmt=grid.format,
                    collection=collection_name(name, source, encoders),
                    encoders=encoders,
                    out=cell_dir,
                    progress=progress,
                )
            except UsageError as exc:
                status = f"error: {exc}"
                log.warning("cell %s (%s) failed: %s", cell_dir.name, label, exc)
        if done.exists():
            row["metrics"] = json.loads(done.read_text())
        row["status"] = status
        rows.append(row)
        if on_cell:
            on_cell(i, len(cells), label, status)
    files = write_comparison(folder, rows, grid.metrics)
    return AblationResult(folder, rows, files)


def _cell_config(grid: Grid, cell: dict[str, Any], overrides: dict[str, dict[str, Any]]) -> Any:
    sections: dict[str, dict[str, Any]] = {s: dict(v) for s, v in overrides.items()}
    for axis, value in cell.items():
        if axis == "reranker" and value in ("none", ""):
            value = "none"
        sections.setdefault(STAGE[axis], {})[axis] = value
    ev = sections.setdefault("eval", {})
    ev.update({k: v for k, v in (("split", grid.split), ("tune_split", grid.tune_split)) if v})
    return build_config(grid.base, **sections)
