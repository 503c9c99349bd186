"""``search train reranker`` and ``search train biencoder``: parse, then the trainer registry.

Every flag defaults to unset: the trainer's ``[train.KIND]`` config table and its
options' own defaults fill what is not given (``search.train.registry.build_options``).
A flag another kind takes is ignored with a warning.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from retrieval.checks import MAX_COUNT
from search.cli.common import handle_errors, out, progress_bars
from search.cli.options import Collection, Format, StoreFlags, Vector, option_group, store_options

app = typer.Typer(help="Train bi-encoders and stage-2 rerankers.", no_args_is_help=True)


def _opt(*names: str, help: str, kind: type = int, lo: float = 1) -> Any:
    """An optional flag; numbers are bounded (counts from ``lo``, rates and epochs >= 0)."""
    bounds: dict[str, Any] = {}
    if kind is int:
        bounds = {"min": int(lo), "max": MAX_COUNT}
    elif kind is float:
        bounds = {"min": 0.0}
    return Annotated[kind | None, typer.Option(*names, help=help, **bounds)]


Dataset = Annotated[str, typer.Argument(help="Dataset path with train and valid splits.")]
Split = _opt("--split", help="Split trained on (train).", kind=str)
Model = _opt("--model", help="Start model: a hub name, a local path or an encoder spec.", kind=str)
Negatives = _opt(
    "--negatives", help="Mined JSONL (`search mine`); rerankers mine their own without.", kind=Path
)
Epochs = _opt("--epochs", help="Epochs (the trainer's default).", kind=float)
Lr = _opt(
    "--lr",
    help="Peak learning rate (the trainer's default; cross-encoder: by starting point).",
    kind=float,
)
SaveSteps = _opt("--save-steps", help="Checkpoint every N steps.")
Resume = _opt("--resume", help="Go on from OUT's last checkpoint.", kind=bool)
BatchSize = _opt("--batch-size", help="Pairs, groups or rows per step.")


@dataclass(frozen=True)
class SharedOptions:
    """Trainer options both commands take (each trainer reads the ones it has)."""

    split: Split = None
    model: Model = None
    negatives: Negatives = None
    batch_size: BatchSize = None
    lr: Lr = None
    save_steps: SaveSteps = None
    resume: Resume = None


@app.command("reranker")
@handle_errors
@store_options()
@option_group(SharedOptions, "shared")
def train_reranker_cmd(
    dataset: Dataset,
    out_path: Annotated[
        Path,
        typer.Option("--out", "-o", help="Model file or folder (a .json sidecar goes next to it)."),
    ],
    kind: Annotated[
        str, typer.Option("--kind", help="Trainer: pair-gbdt, cross-encoder or qwen-vl.")
    ] = "pair-gbdt",
    encoder: Annotated[
        list[str] | None,
        typer.Option("--encoder", "-e", help="Encoders if the collection must be indexed first."),
    ] = None,
    k: _opt("--k", help="Stage-1 candidates per query (50).") = None,
    vector: Vector = None,
    objective: _opt(
        "--objective",
        help="pair-gbdt: lambdarank (default; calibrated on valid) or binary.",
        kind=str,
    ) = None,
    stack: _opt(
        "--with",
        help="pair-gbdt: stack these rerankers' scores as features (cross-encoder:PATH[+...]).",
        kind=str,
    ) = None,
    valid_split: _opt(
        "--valid-split", help="Split for early stopping and the report.", kind=str
    ) = None,
    lora_r: _opt("--lora-r", help="qwen-vl: LoRA rank (16).") = None,
    epochs: Epochs = None,
    head_lr: _opt(
        "--head-lr", help="cross-encoder: LR of a fresh head (by starting point).", kind=float
    ) = None,
    max_pixels: _opt("--max-pixels", help="qwen-vl: pixel cap per image.") = None,
    max_steps: _opt(
        "--max-steps", help="Stop after N steps (a smoke run; -1: none).", lo=-1
    ) = None,
    group_size: _opt("--group-size", help="1 positive + N-1 negatives per group (8).") = None,
    loss: _opt("--loss", help="cross-encoder: ce (group softmax) or bce.", kind=str) = None,
    max_length: _opt("--max-length", help="cross-encoder: tokens per pair (128).") = None,
    fields: _opt(
        "--fields",
        help="cross-encoder: product fields read after the title, '+'-separated "
        "(description, brand+price; default: the title only).",
        kind=str,
    ) = None,
    text: _opt(
        "--text",
        help="cross-encoder: titles as stored (raw) or with product-code separators "
        "dropped (codes, the default).",
        kind=str,
    ) = None,
    warmup: _opt(
        "--warmup", help="cross-encoder: warm-up fraction (<1) or steps.", kind=float
    ) = None,
    stage1_weight: _opt(
        "--stage1-weight",
        help="cross-encoder: weight of stage 1's rank added to the score "
        "(default: chosen on valid; 0: the model alone).",
        kind=float,
    ) = None,
    patience: _opt(
        "--patience", help="Stop after N epochs without gain on valid (1; 0: never).", lo=0
    ) = None,
    collection: Collection = None,
    fmt: Format = None,
    *,
    store: StoreFlags,
    shared: SharedOptions,
) -> None:
    """Train a reranker on a split's stage-1 candidates; report stage 1 vs stage 2 on valid."""
    flags = dict(locals())
    cfg = store.load(stage1={"encoders": encoder or None, "vector": vector})
    _run(cfg, kind, "reranker", flags)


@app.command("biencoder")
@handle_errors
@store_options("config", "data_dir")
@option_group(SharedOptions, "shared")
def train_biencoder_cmd(
    dataset: Dataset,
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Folder of the trained model.")],
    kind: Annotated[
        str, typer.Option("--kind", help="Trainer: clip (open_clip), text or timm.")
    ] = "clip",
    loss: _opt(
        "--loss", help="clip: infonce or siglip; text: mnrl or arcface; timm: arcface.", kind=str
    ) = None,
    pairs: _opt(
        "--pairs", help="clip: image-text,image-image,text-text (any of them).", kind=str
    ) = None,
    epochs: _opt("--epochs", help="Epochs (1).") = None,
    warmup_steps: _opt("--warmup-steps", help="Linear warm-up.") = None,
    accumulate: _opt("--accumulate", help="Batches per step.") = None,
    keep: _opt("--keep", help="Checkpoints kept (2).") = None,
    precision: _opt(
        "--precision", help="auto (bf16/fp16 on a GPU), fp32, fp16, bf16.", kind=str
    ) = None,
    device: _opt("--device", help="clip: auto, cpu, cuda, mps.", kind=str) = None,
    mini_batch: _opt(
        "--mini-batch", help="text: cached MNRL, rows per forward (0: plain MNRL).", lo=0
    ) = None,
    margin: _opt("--margin", help="arcface: angular margin (0.5).", kind=float) = None,
    scale: _opt("--scale", help="arcface: logit scale (30).", kind=float) = None,
    subcenters: _opt("--subcenters", help="arcface: centres per group (1).") = None,
    margin_warmup: _opt(
        "--margin-warmup", help="arcface: steps to reach the margin (0: none).", lo=0
    ) = None,
    per_group: _opt("--per-group", help="arcface: listings of a group per batch (4).") = None,
    neck: _opt("--neck", help="timm: BN-dropout-FC neck size (512; 0: none).", lo=0) = None,
    image_size: _opt("--image-size", help="timm: square input size.", lo=16) = None,
    freeze: _opt("--freeze", help="timm: fraction of the backbone kept fixed.", kind=float) = None,
    valid_split: _opt(
        "--valid-split", help="Split for recall@k each epoch ('' for none).", kind=str
    ) = None,
    fmt: Format = None,
    *,
    store: StoreFlags,
    shared: SharedOptions,
) -> None:
    """Fine-tune a bi-encoder on a dataset's product groups (contrastive or ArcFace)."""
    flags = dict(locals())
    _run(store.load(), kind, "biencoder", flags)


# Arguments of the commands that are not trainer options.
_NOT_OPTIONS = {"dataset", "out_path", "kind", "encoder", "vector", "collection", "fmt"}
_NOT_OPTIONS |= {"store", "shared"}  # the option groups, whose fields are merged in


def _run(cfg: Any, kind: str, role: str, flags: dict[str, Any]) -> None:
    """Train through the registry with progress bars, then print the report."""
    from search.train.registry import TrainJob, train

    flags = {**flags, **asdict(flags["shared"])}
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in flags.items()}
    options = {k: v for k, v in options.items() if k not in _NOT_OPTIONS}
    with progress_bars() as progress:
        job = TrainJob(
            flags["dataset"], flags["out_path"], flags.get("collection"), flags["fmt"], progress
        )
        report = train(cfg, kind, role, job, options)
    print_report(report)


def print_report(report: Any) -> None:
    """Stage 1 vs stage 2 on valid (rerankers), the loss curve, validation per epoch, the model."""
    if report.metrics:
        table = Table(title=f"{report.collection} · {report.vector} · k={report.k} · valid")
        for col in ("metric", "stage 1", "stage 2"):
            table.add_column(col, justify="left" if col == "metric" else "right")
        for name in sorted({m.split("/", 1)[1] for m in report.metrics}):
            s1, s2 = report.metrics.get(f"stage1/{name}"), report.metrics.get(f"stage2/{name}")
            table.add_row(name, f"{s1:.3f}", f"{s2:.3f}")
        out.print(table)
    if report.losses:
        losses = report.losses
        out.print(f"loss: {losses[0]:.4f} -> {losses[-1]:.4f} over {len(losses)} steps")
    for row in report.evals:
        out.print("  ".join(f"{k} {v:.3f}" for k, v in row.items()), highlight=False)
    out.print(
        f"{report.kind}: {report.train_size} trained on, {report.summary}, "
        f"{report.seconds:.1f}s; model: {report.out}",
        highlight=False,
    )
