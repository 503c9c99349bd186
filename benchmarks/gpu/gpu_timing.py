"""What the GPU benchmark scripts share: synchronised timing of a step at several batch
sizes (out-of-memory sizes recorded, not fatal) and writing the JSON + Markdown report."""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def sync(device: str) -> None:
    """Wait for queued CUDA work so wall-clock times are real."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_step(
    step: Callable[[], Any], args: argparse.Namespace, *, inference: bool
) -> dict[str, Any]:
    """Warm up, then run ``step`` until both ``--min-iters`` and ``--min-seconds`` are met."""
    cuda = args.device.startswith("cuda")
    mode = torch.inference_mode() if inference else contextlib.nullcontext()
    with mode:
        for _ in range(args.warmup):
            step()
        sync(args.device)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        iters, start = 0, time.perf_counter()
        while iters < args.min_iters or time.perf_counter() - start < args.min_seconds:
            step()
            iters += 1
        sync(args.device)
    elapsed = time.perf_counter() - start
    return {
        "iters": iters,
        "elapsed": elapsed,
        "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
    }


def run_sizes(
    name: str,
    model: Any,
    measure: Callable[[int], dict[str, Any]],
    batches: list[int],
    device: str,
) -> list[dict[str, Any]]:
    """One result row per batch size; a size that runs out of GPU memory is marked ``oom``."""
    rows = []
    params = sum(p.numel() for p in model.parameters())
    for batch in batches:
        row: dict[str, Any] = {"model": name, "params_m": round(params / 1e6, 1)}
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
        try:
            row |= {"batch_size": batch, **measure(batch)}
        except torch.cuda.OutOfMemoryError:
            row |= {"batch_size": batch, "oom": True}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def save_report(
    report: dict[str, Any], out: Path, stem: str, markdown: Callable[[dict], str]
) -> None:
    """Write ``<stem>.json`` and ``<stem>.md`` (``_smoke`` added for smoke runs) and print."""
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{stem}_smoke" if report["smoke"] else stem
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    (out / f"{stem}.md").write_text(text)
    print(text)
