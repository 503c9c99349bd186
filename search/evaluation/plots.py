"""PNG plots of evaluations and ablations (matplotlib, Agg back-end: no display)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search.evaluation.scoring import Scored


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_recall_at_k(scored: Scored, path: Path) -> Path:
    """Recall@k of each stage against k (log axis)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for stage, style in (("stage1", "o-"), ("stage2", "s--")):
        ks = scored.ks[stage]
        values = [scored.metrics[f"{stage}/recall@{k}"] for k in ks]
        ax.plot(ks, values, style, label=stage.replace("stage", "stage "))
    ceiling = scored.metrics.get("stage2/recall_ceiling")
    if ceiling is not None:
        ax.axhline(ceiling, color="grey", lw=0.8, ls=":", label="stage-1 recall@K (ceiling)")
    ax.set_xscale("log")
    cuts = sorted(set(scored.ks["stage1"]) | set(scored.ks["stage2"]))
    ax.set_xticks(cuts, [str(k) for k in cuts])
    ax.minorticks_off()
    ax.set_xlabel("k")
    ax.set_ylabel("recall@k")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_f1_threshold(scored: Scored, settings: dict[str, Any], path: Path) -> Path:
    """Match-set F1 against the threshold, per stage: the tuning split and the scored
    split, keep-nearest off and on, the chosen thresholds marked."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), squeeze=False)
    tune, split = settings.get("tune_split", "valid"), settings.get("split", "test")
    for ax, stage in zip(axes[0], ("stage1", "stage2")):
        for o in (o for o in scored.matches if o.stage == stage):
            rule = " +nearest" if o.keep_nearest else ""
            (line,) = ax.plot(o.test.thresholds, o.test.f1, label=f"{split}{rule}")
            ax.plot(
                o.tune.thresholds, o.tune.f1, ls=":", color=line.get_color(), label=f"{tune}{rule}"
            )
            ax.axvline(o.threshold, color=line.get_color(), lw=0.8, ls="--")
        ax.set_title(stage.replace("stage", "stage ") + " match sets")
        ax.set_xlabel("threshold on the stage's score")
        ax.set_ylabel("F1")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_ablation(
    labels: Sequence[str],
    metrics: Sequence[str],
    values: Sequence[Sequence[float | None]],
    path: Path,
) -> Path:
    """Grouped bars: one group per cell, one bar per metric, the best cell per metric starred."""
    plt = _pyplot()
    n_cells, n_metrics = len(labels), len(metrics)
    width = 0.8 / max(n_metrics, 1)
    fig, ax = plt.subplots(figsize=(max(7.0, 1.2 * n_cells + 4), 4.5))
    for j, name in enumerate(metrics):
        col = [values[i][j] for i in range(n_cells)]
        xs = [i + (j - (n_metrics - 1) / 2) * width for i in range(n_cells)]
        ax.bar(xs, [v or 0.0 for v in col], width, label=name)
        present = [v for v in col if v is not None]
        for i, v in enumerate(col):
            if present and v == max(present):  # every cell tied for the best
                ax.annotate("★", (xs[i], v), ha="center", va="bottom", fontsize=9)
    ax.set_xticks(range(n_cells))
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.08)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
