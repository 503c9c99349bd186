"""``search train reranker`` and ``search train biencoder``: thin commands over ``search.train``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from search.cli.common import (
    Collection,
    Format,
    StoreFlags,
    handle_errors,
    out,
    progress_bars,
    store_options,
)

app = typer.Typer(help="Train bi-encoders and stage-2 rerankers.", no_args_is_help=True)


@app.command("reranker")
@handle_errors
@store_options()
def train_reranker_cmd(
    dataset: Annotated[str, typer.Argument(help="Dataset path with train and valid splits.")],
    out_path: Annotated[
        Path, typer.Option("--out", "-o", help="Model file (a .json sidecar goes next to it).")
    ],
    kind: Annotated[
        str, typer.Option("--kind", help="Reranker kind: pair-gbdt (LightGBM on pair features).")
    ] = "pair-gbdt",
    encoder: Annotated[
        list[str] | None,
        typer.Option("--encoder", "-e", help="Encoders if the collection must be indexed first."),
    ] = None,
    k: Annotated[int, typer.Option("--k", help="Stage-1 candidates per query.")] = 50,
    vector: Annotated[
        str | None, typer.Option("--vector", help="Stage-1 vector or 'hybrid'.")
    ] = None,
    objective: Annotated[
        str, typer.Option("--objective", help="binary (default) or lambdarank.")
    ] = "binary",
    split: Annotated[str, typer.Option("--split", help="Split trained on.")] = "train",
    valid_split: Annotated[
        str, typer.Option("--valid-split", help="Split for early stopping and the report.")
    ] = "valid",
    model: Annotated[
        str | None, typer.Option("--model", help="qwen-vl: base checkpoint (hub name or path).")
    ] = None,
    negatives: Annotated[
        Path | None,
        typer.Option("--negatives", help="qwen-vl: mined JSONL; default stage-1 ranks 2..k."),
    ] = None,
    lora_r: Annotated[int, typer.Option("--lora-r", help="qwen-vl: LoRA rank.")] = 16,
    epochs: Annotated[
        float, typer.Option("--epochs", help="qwen-vl, cross-encoder: epochs.")
    ] = 1.0,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Pairs (groups for cross-encoder)/step.")
    ] = 4,
    lr: Annotated[
        float | None,
        typer.Option("--lr", help="Peak learning rate (qwen-vl 1e-4, cross-encoder 2e-5)."),
    ] = None,
    max_pixels: Annotated[
        int, typer.Option("--max-pixels", help="qwen-vl: pixel cap per image.")
    ] = 512 * 28 * 28,
    save_steps: Annotated[
        int, typer.Option("--save-steps", help="qwen-vl: checkpoint every N steps.")
    ] = 500,
    resume: Annotated[
        bool, typer.Option("--resume", help="qwen-vl: go on from OUT's last checkpoint.")
    ] = False,
    group_size: Annotated[
        int, typer.Option("--group-size", help="cross-encoder: 1 positive + N-1 negatives.")
    ] = 8,
    ce_loss: Annotated[
        str, typer.Option("--loss", help="cross-encoder: ce (group softmax) or bce.")
    ] = "ce",
    max_length: Annotated[
        int, typer.Option("--max-length", help="cross-encoder: tokens per pair.")
    ] = 128,
    warmup: Annotated[
        float, typer.Option("--warmup", help="cross-encoder: warm-up fraction (<1) or steps.")
    ] = 0.1,
    patience: Annotated[
        int, typer.Option("--patience", help="cross-encoder: stop after N epochs without gain.")
    ] = 0,
    collection: Collection = None,
    fmt: Format = None,
    *,
    store: StoreFlags,
) -> None:
    """Train a reranker on a split's stage-1 candidates; report stage 1 vs stage 2 on valid."""
    from search.train.candidates import train_reranker

    cfg = store.load(
        stage1={"encoders": encoder or None, "vector": vector},
    )
    with progress_bars() as progress:
        extra = {}
        if kind == "qwen-vl":
            extra = {
                "model": model,
                "negatives": negatives,
                "lora_r": lora_r,
                "epochs": epochs,
                "batch_size": batch_size,
                "lr": 1e-4 if lr is None else lr,
                "max_pixels": max_pixels,
                "save_steps": save_steps,
                "resume": resume,
            }
        if kind == "cross-encoder":
            extra = {
                "model": model,
                "negatives": negatives,
                "epochs": epochs,
                "batch_size": batch_size,
                "lr": 2e-5 if lr is None else lr,
                "save_steps": save_steps,
                "resume": resume,
                "group_size": group_size,
                "loss": ce_loss,
                "max_length": max_length,
                "warmup": warmup,
                "patience": patience,
            }
        report = train_reranker(
            cfg,
            kind,
            dataset,
            out_path,
            collection=collection,
            fmt=fmt,
            k=k,
            split=split,
            valid_split=valid_split,
            objective=objective,
            progress=progress,
            **extra,
        )
    table = Table(title=f"{report.collection} · {report.vector} · k={report.k} · {valid_split}")
    for col in ("metric", "stage 1", "stage 2"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for name in sorted({m.split("/", 1)[1] for m in report.metrics}):
        s1, s2 = report.metrics.get(f"stage1/{name}"), report.metrics.get(f"stage2/{name}")
        table.add_row(name, f"{s1:.3f}", f"{s2:.3f}")
    out.print(table)
    if kind in ("qwen-vl", "cross-encoder"):
        done = f"{report.info['steps']} steps, loss {report.info['train_loss']:.4f}"
    else:
        done = f"{report.info.get('best_iteration')} trees"
    out.print(
        f"{report.train_queries} train queries, {done}, {report.seconds:.1f}s; model: {report.out}",
        highlight=False,
    )


@app.command("biencoder")
@handle_errors
@store_options("config", "data_dir")
def train_biencoder_cmd(
    dataset: Annotated[str, typer.Argument(help="Dataset path with train and valid splits.")],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Folder of the trained model.")],
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="Start model: a clip encoder spec (ARCH/TAG, hf-hub:..., "
            "ARCH,pretrained=PATH|none, a folder) or a text model.",
        ),
    ],
    kind: Annotated[str, typer.Option("--kind", help="clip (open_clip) or text.")] = "clip",
    loss: Annotated[str, typer.Option("--loss", help="clip: infonce or siglip.")] = "infonce",
    pairs: Annotated[
        str, typer.Option("--pairs", help="clip: image-text,image-image,text-text (any of them).")
    ] = "image-text,image-image,text-text",
    negatives: Annotated[
        Path | None, typer.Option("--negatives", help="Mined JSONL (search mine): extra columns.")
    ] = None,
    epochs: Annotated[int, typer.Option("--epochs", help="Epochs.")] = 1,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Pairs per batch.")] = 32,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate.")] = 1e-5,
    warmup_steps: Annotated[int, typer.Option("--warmup-steps", help="Linear warm-up.")] = 0,
    accumulate: Annotated[int, typer.Option("--accumulate", help="Batches per step.")] = 1,
    save_steps: Annotated[
        int, typer.Option("--save-steps", help="Checkpoint every N steps (0: each epoch).")
    ] = 0,
    keep: Annotated[int, typer.Option("--keep", help="Checkpoints kept.")] = 2,
    resume: Annotated[
        bool, typer.Option("--resume", help="Go on from OUT's last checkpoint.")
    ] = False,
    precision: Annotated[
        str, typer.Option("--precision", help="auto (bf16/fp16 on a GPU), fp32, fp16, bf16.")
    ] = "auto",
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, mps.")] = "auto",
    mini_batch: Annotated[
        int,
        typer.Option("--mini-batch", help="text: cached MNRL, rows per forward (0: plain MNRL)."),
    ] = 0,
    split: Annotated[str, typer.Option("--split", help="Split trained on.")] = "train",
    valid_split: Annotated[
        str, typer.Option("--valid-split", help="Split for recall@k each epoch ('' for none).")
    ] = "valid",
    fmt: Format = None,
    *,
    store: StoreFlags,
) -> None:
    """Fine-tune a bi-encoder contrastively on a dataset's product groups."""
    import importlib.util

    from retrieval.errors import UsageError

    cfg = store.load()
    common = dict(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        warmup_steps=warmup_steps,
        accumulate=accumulate,
        save_steps=save_steps,
        keep=keep,
        resume=resume,
        precision=precision,
        device=device,
        split=split,
        valid_split=valid_split,
        fmt=fmt,
    )
    if kind == "clip":
        from search.train.clip import train_clip_biencoder

        report = train_clip_biencoder(
            cfg,
            dataset,
            out_path,
            model=model,
            loss=loss,
            pairs=pairs,
            negatives=negatives,
            **common,
        )
    elif kind == "text":
        if importlib.util.find_spec("search.train.text") is None:
            raise UsageError("training text bi-encoders is not built yet; use --kind clip")
        from search.train.text import train_text_biencoder

        report = train_text_biencoder(
            cfg,
            dataset,
            out_path,
            model=model,
            negatives=negatives,
            mini_batch=mini_batch,
            **common,
        )
    else:
        raise UsageError(f"unknown bi-encoder kind {kind!r}; known: clip, text")
    losses = getattr(report, "losses", []) or []
    if losses:
        out.print(f"loss: {losses[0]:.4f} -> {losses[-1]:.4f} over {len(losses)} steps")
    for row in getattr(report, "evals", []) or []:
        out.print("  ".join(f"{k} {v:.3f}" for k, v in row.items()), highlight=False)
    out.print(f"model: {getattr(report, 'out', out_path)}", highlight=False)
