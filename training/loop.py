"""A small, generic training loop on ``accelerate``: the model's forward returns the loss.

What it does: AdamW with a cosine schedule after a linear warm-up; gradient
accumulation; mixed precision (bf16 / fp16 autocast on a GPU, chosen by
``retrieval.device.autocast_dtype``); a checkpoint every ``save_steps``
optimiser steps (model, optimiser, scheduler, grad scaler, RNG states and the data
position, in formats that cannot run code when read back: ``training.checkpoint``),
the last ``keep`` of them kept; ``resume`` from the newest one with the same data order
(``training.resume``'s rule: resuming needs a checkpoint, a fresh run needs a folder
without one); an evaluation hook after each epoch (or every ``eval_steps`` optimiser
steps, and ``stop`` asked after each evaluation: early stopping); a rich progress bar. A NaN or
infinite loss stops the run with ``TrainingDivergedError`` naming the step; the
checkpoints on disk are left alone.

Several GPUs or machines: run the same command under ``accelerate launch`` or
``torchrun`` (give them the ``search`` console script: ``python -m search.cli`` does
not register the sub-commands); the Accelerator shards the batches across processes
and wraps the model in DDP (or DeepSpeed)::

    torchrun --nproc_per_node 8 $(which search) train biencoder --kind clip DATA ...
    accelerate launch --config_file training/configs/accelerate_ddp.yaml \\
        $(which search) train biencoder ...
    accelerate launch --config_file training/configs/accelerate_deepspeed.yaml \\
        $(which search) train biencoder ...                     # ZeRO-2
    torchrun --nnodes 2 --node_rank R --rdzv_endpoint HOST:29500 --nproc_per_node 8 ...

Each process takes every world-th batch of the sampler's order; in-batch negatives
stay per process (embeddings are not gathered across GPUs).
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from retrieval.atomic import write_json
from training.loop_state import (
    CHECKPOINTS,
    STATE_FILE,
    LoopArgs,
    LoopResult,
    LoopState,
    checkpoints,
    evals_of,
    newest_checkpoint,
)
from training.resume import TrainingDivergedError, diverged, resume_from

__all__ = ["LoopArgs", "LoopResult", "TrainingDivergedError", "checkpoints", "train_loop"]

log = logging.getLogger(__name__)


def cosine_with_warmup(warmup: int, total: int) -> Callable[[int], float]:
    """LR multiplier: linear 0 -> 1 over ``warmup`` steps, then cosine 1 -> 0 at ``total``."""

    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))

    return factor


def _total_steps(sampler: Any, args: LoopArgs, world: int = 1) -> int:
    """Optimiser steps of the run on each process (batches are sharded across them)."""
    per_process = [math.ceil(sampler.epoch_length(e) / world) for e in range(args.epochs)]
    total = sum(math.ceil(n / args.accumulate) for n in per_process)
    return min(total, args.max_steps) if args.max_steps else total


def _param_groups(model: Any, args: LoopArgs) -> list[dict[str, Any]]:
    """Weight decay on matrices only; a model's ``lr_scales()`` (parameter name prefix ->
    learning-rate factor, e.g. a freshly initialised head) gets groups of its own."""
    scales: dict[str, float] = model.lr_scales() if hasattr(model, "lr_scales") else {}
    groups: dict[tuple[float, bool], list[Any]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        factor = next((f for prefix, f in scales.items() if name.startswith(prefix)), 1.0)
        groups.setdefault((factor, p.ndim >= 2), []).append(p)
    return [
        {
            "params": params,
            "lr": args.lr * factor,
            "weight_decay": args.weight_decay if decay else 0.0,
        }
        for (factor, decay), params in sorted(groups.items(), key=lambda kv: kv[0])
    ]


def _finite_weights(model: Any) -> bool:
    import torch

    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def train_loop(
    model: Any,
    dataset: Any,
    sampler: Any,
    collate: Callable[[list[Any]], Any],
    args: LoopArgs,
    *,
    evaluate: Callable[[Any], dict[str, float]] | None = None,
    export: Callable[[Any, Path], None] | None = None,
    on_step: Callable[[int, float], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> LoopResult:
    """Train ``model`` (whose ``forward(batch)`` returns a scalar loss) on the batches of
    ``sampler`` (a GroupBatchSampler-like object with ``set_position`` and
    ``epoch_length``). ``evaluate(model)`` runs on the main process after each epoch, or
    every ``args.eval_steps`` steps; ``stop()``, asked after each evaluation, ends the run
    when True (on every process); ``export(model, folder)`` writes a usable model into
    each checkpoint folder."""
    import torch
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from torch.utils.data import DataLoader

    from retrieval.device import autocast_dtype, pick_device
    from training.checkpoint import load_checkpoint, save_checkpoint

    start = resume_from(Path(args.out), args.resume, newest_checkpoint)
    device = pick_device(args.device)
    dtype = autocast_dtype(device, args.precision)
    mixed = {None: "no", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
    # a batch of one pair kind leaves a tower unused: DDP must not wait for its grads
    ddp = DistributedDataParallelKwargs(find_unused_parameters=args.find_unused_parameters)
    acc = Accelerator(mixed_precision=mixed, cpu=device == "cpu", kwargs_handlers=[ddp])
    optimizer = torch.optim.AdamW(_param_groups(model, args), lr=args.lr)
    total = _total_steps(sampler, args, acc.num_processes)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, cosine_with_warmup(args.warmup_steps, total)
    )
    loader = DataLoader(
        dataset, batch_sampler=sampler, collate_fn=collate, num_workers=args.num_workers
    )
    model, optimizer, loader = acc.prepare(model, optimizer, loader)
    state = LoopState()
    result = LoopResult(state)
    if start is not None:
        load_checkpoint(acc, model, optimizer, scheduler, Path(start))
        state = result.state = LoopState.read(Path(start))
        result.evals = evals_of(Path(start))  # the curve goes on across a resume
        result.checkpoint = Path(start)
        log.info("resumed from %s (step %d, epoch %d)", start, state.step, state.epoch + 1)

    def mark(folder: Path) -> None:
        info = {**asdict(state), "losses": result.losses[-50:], "evals": result.evals}
        write_json(folder / STATE_FILE, info, indent=1)

    def save() -> None:
        if not _finite_weights(acc.unwrap_model(model)):
            raise diverged("non-finite weights", state.step, result.checkpoint)
        folder = Path(args.out) / CHECKPOINTS / f"step-{state.step}"
        save_checkpoint(acc, model, optimizer, scheduler, folder)
        acc.wait_for_everyone()
        if acc.is_main_process:
            if export is not None:
                export(acc.unwrap_model(model), folder)
            mark(folder)  # written last: a folder without it is an unfinished checkpoint
            for old in checkpoints(args.out)[: -max(1, args.keep)]:
                shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()
        result.checkpoint = folder

    def run_eval() -> bool:
        """Evaluate (main process), then whether every process stops here."""
        if evaluate is None:
            return False
        if acc.is_main_process:
            metrics = evaluate(acc.unwrap_model(model))
            metrics = {"epoch": float(state.epoch), "step": float(state.step), **metrics}
            result.evals.append(metrics)
            log.info("step %d: %s", state.step, metrics)
            model.train()
            if stop is not None and stop():
                acc.set_trigger()
        result.stopped = acc.check_trigger()
        return result.stopped

    def stepped() -> bool:
        """After each optimiser step: the save, the hook, the step-wise evaluation (a
        run killed between a checkpoint and its step's evaluation resumes past that
        evaluation); True: stop here (saved first)."""
        saved = args.save_steps > 0 and state.step % args.save_steps == 0
        if saved:
            save()
        if on_step is not None:
            on_step(state.step, result.losses[-1])
        evaluated = args.eval_steps > 0 and state.step % args.eval_steps == 0
        done = evaluated and run_eval()
        if evaluated and saved and acc.is_main_process and result.checkpoint is not None:
            mark(result.checkpoint)  # this step's checkpoint records its evaluation too
        elif done:
            save()
        return done

    bar = _progress(args.progress and acc.is_main_process)
    task = bar.add_task("training", total=total, completed=min(state.step, total))
    with bar:
        while state.epoch < args.epochs and state.step < total and not result.stopped:
            sampler.set_position(state.epoch, state.batch)
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(state.epoch)
            _run_epoch(
                acc,
                model,
                optimizer,
                scheduler,
                loader,
                args,
                state,
                result,
                total,
                lambda: bar.update(
                    task,
                    completed=state.step,
                    description=f"epoch {state.epoch + 1} · loss {result.losses[-1]:.4f}",
                ),
                stepped,
            )
            if not result.stopped and state.batch >= sampler.epoch_length(state.epoch):
                state.epoch, state.batch = state.epoch + 1, 0
                if evaluate is not None and args.eval_steps <= 0 and acc.is_main_process:
                    metrics = {"epoch": float(state.epoch), **evaluate(acc.unwrap_model(model))}
                    result.evals.append(metrics)
                    log.info("epoch %d: %s", state.epoch, metrics)
                    model.train()
                if args.save_steps <= 0:
                    save()
    if result.checkpoint is None or not result.checkpoint.name.endswith(f"-{state.step}"):
        save()
    return result


def _run_epoch(
    acc, model, optimizer, scheduler, loader, args, state, result, total, tick, stepped
) -> None:
    """One (possibly resumed) epoch, until it ends, ``total`` steps are done or
    ``stepped()`` (the per-step hook, evaluation and save) says stop."""
    model.train()
    world, start = acc.num_processes, state.batch
    count = len(loader)
    running: list[float] = []
    for i, batch in enumerate(loader, start=1):
        sync = i % args.accumulate == 0 or i == count
        with contextlib.nullcontext() if sync else acc.no_sync(model), acc.autocast():
            loss = model(batch)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise diverged(f"loss {value}", state.step + 1, result.checkpoint)
            acc.backward(loss / args.accumulate)
        running.append(value)
        if not sync:
            continue
        if args.max_grad_norm:
            acc.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        state.step += 1
        state.batch = start + i * world
        result.losses.append(sum(running) / len(running))
        running.clear()
        tick()
        if stepped() or state.step >= total:
            return


def _progress(show: bool) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        disable=not show,
    )
