"""Training throughput on one GPU: samples per second and peak memory, bf16 autocast.

Two trainers, their architectures built from configs with random weights (no hub):

* ``clip``: open_clip ViT-B-16 (224px images, 77-token texts), one training step =
  forward of both towers, the symmetric InfoNCE loss of ``training.losses`` (learnable
  temperature), backward, AdamW step; a sample is one image-text pair.
* ``cross-encoder``: bge-reranker-base's XLMRobertaForSequenceClassification
  (XLM-RoBERTa-base: 12 layers, width 768, vocab 250002), groups of ``--group-size``
  pairs (1 positive + 7 negatives) of ``--ce-tokens`` tokens, FlagEmbedding's group-wise
  cross-entropy, backward, AdamW step; a sample is one pair (groups/s = pairs/s / 8).

Weights stay fp32 (as ``training.loop`` keeps them: accelerate's bf16 autocast), AdamW
is the fused CUDA one. Per batch size: warm-up steps, then timed steps between
``torch.cuda.synchronize()`` calls; peak memory from ``torch.cuda.max_memory_allocated``.
Writes ``train_bench.json`` and ``train_bench.md`` to ``--out`` ($OUT if set, else
benchmarks/results/). Measured, not asserted.

    python benchmarks/gpu/train_bench.py            # full: needs CUDA; about 1-2 min on an H100
    python benchmarks/gpu/train_bench.py --smoke    # tiny configs on the CPU, seconds
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # gpu_timing beside this file
from gpu_timing import run_sizes, save_report, time_step  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere

# bge-reranker-base (XLM-RoBERTa-base), as in its config.json.
CE_FULL = {
    "vocab_size": 250002,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 514,
    "type_vocab_size": 1,
    "layer_norm_eps": 1e-5,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
}
CE_SMOKE = {**CE_FULL, "vocab_size": 1000, "hidden_size": 32, "num_hidden_layers": 2}
CE_SMOKE |= {"num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 130}
CLIP_SMOKE = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def build_clip(args: argparse.Namespace) -> tuple[Any, int, int]:
    """(model, image size, context length) of ViT-B-16, or a tiny config for --smoke."""
    import open_clip
    from open_clip.model import CLIP

    cfg = CLIP_SMOKE if args.smoke else open_clip.get_model_config("ViT-B-16")
    model = CLIP(**cfg).to(args.device)
    return model, cfg["vision_cfg"]["image_size"], cfg["text_cfg"]["context_length"]


def clip_step(args: argparse.Namespace, parts: tuple[Any, int, int], batch: int) -> Callable:
    """One InfoNCE training step over ``batch`` random image-text pairs."""
    from training.losses import InfoNCELoss

    model, size, ctx = parts
    loss_fn = InfoNCELoss().to(args.device)
    params = [*model.parameters(), *loss_fn.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-5, fused=args.device.startswith("cuda"))
    images = torch.randn(batch, 3, size, size, device=args.device)
    texts = torch.randint(1, 49000, (batch, ctx), device=args.device)
    groups = torch.arange(batch, device=args.device)

    def step() -> None:
        with torch.autocast(args.device.split(":")[0], dtype=args.dtype, enabled=args.amp):
            a = torch.nn.functional.normalize(model.encode_image(images).float(), dim=-1)
            b = torch.nn.functional.normalize(model.encode_text(texts).float(), dim=-1)
            loss = loss_fn(a, b, groups)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def build_ce(args: argparse.Namespace) -> Any:
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    config = XLMRobertaConfig(**(CE_SMOKE if args.smoke else CE_FULL), num_labels=1)
    model = XLMRobertaForSequenceClassification._from_config(config, attn_implementation="sdpa")
    return model.to(args.device)


def ce_step(args: argparse.Namespace, model: Any, batch: int) -> Callable:
    """One group-wise cross-entropy step over ``batch`` pairs (batch / group-size groups)."""
    groups = max(1, batch // args.group_size)
    vocab = model.config.vocab_size
    ids = torch.randint(5, vocab, (groups * args.group_size, args.ce_tokens), device=args.device)
    ids[:, 0], ids[:, -1] = 0, 2
    mask = torch.ones_like(ids)
    target = torch.zeros(groups, dtype=torch.long, device=args.device)  # positive first
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5, fused=args.device.startswith("cuda"))

    def step() -> None:
        with torch.autocast(args.device.split(":")[0], dtype=args.dtype, enabled=args.amp):
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
        loss = torch.nn.functional.cross_entropy(logits.view(groups, args.group_size), target)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def measure(
    make: Callable[[int], Callable[[], None]], batch: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Samples/s of one batch size (forward, backward and optimizer step)."""
    t = time_step(make(batch), args, inference=False)
    return {
        "iters": t["iters"],
        "ms_per_step": 1000 * t["elapsed"] / t["iters"],
        "samples_per_s": batch * t["iters"] / t["elapsed"],
        "peak_mem_gib": t["peak_mem_gib"],
    }


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    cols = ["model", "batch", "samples/s", "ms/step", "peak GiB"]
    lines = [
        "# Training throughput" + (" (smoke: tiny configs)" if report["smoke"] else ""),
        "",
        f"{m['device']}; torch {m['torch']} (CUDA {m['cuda']}); {m['dtype']} autocast, fp32 "
        "weights, fused AdamW. Random weights: open_clip ViT-B-16 (224px, 77 tokens, "
        f"InfoNCE) and bge-reranker-base (groups of {report['params']['group_size']} pairs "
        f"of {report['params']['ce_tokens']} tokens, group-wise CE); a sample is an "
        "image-text pair / a query-candidate pair.",
        "",
        "| " + " | ".join(cols) + " |",
        "| --- |" + " ---: |" * (len(cols) - 1),
    ]
    for r in report["results"]:
        if r.get("oom"):
            cells = [r["model"], str(r["batch_size"]), "out of memory", "", ""]
        else:
            peak = "" if r["peak_mem_gib"] is None else f"{r['peak_mem_gib']:.2f}"
            cells = [r["model"], str(r["batch_size"]), f"{r['samples_per_s']:,.1f}"]
            cells += [f"{r['ms_per_step']:.1f}", peak]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Command: `{report['command']}` ({report['wall_s']:.0f} s).", ""]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny configs on the CPU")
    p.add_argument("--models", nargs="+", default=["clip", "cross-encoder"])
    p.add_argument("--clip-batches", type=int, nargs="+", default=[64, 128, 256])
    p.add_argument("--ce-batches", type=int, nargs="+", default=[64, 128, 256])
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--ce-tokens", type=int, default=64)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--min-iters", type=int, default=10)
    p.add_argument("--min-seconds", type=float, default=3.0)
    default_out = os.environ.get("OUT") or "benchmarks/results"
    p.add_argument("--out", type=Path, default=Path(default_out))
    args = p.parse_args(argv)
    if args.smoke:
        args.device, args.dtype, args.amp = "cpu", torch.bfloat16, False
        args.clip_batches, args.ce_batches = [4, 8], [8, 16]
        args.warmup, args.min_iters, args.min_seconds = 1, 2, 0.1
    else:
        if not torch.cuda.is_available():
            p.error("the full run needs a CUDA GPU; use --smoke on a CPU")
        args.device, args.dtype, args.amp = "cuda", torch.bfloat16, True
        torch.backends.cuda.matmul.allow_tf32 = True
    return args


def main(argv: list[str] | None = None) -> None:
    import transformers

    args = parse_args(argv)
    started = time.perf_counter()
    torch.manual_seed(0)
    results: list[dict[str, Any]] = []
    if "clip" in args.models:
        parts = build_clip(args)
        make = lambda b: clip_step(args, parts, b)  # noqa: E731
        name = "clip tiny" if args.smoke else "clip ViT-B-16"
        results += run_sizes(
            name, parts[0], lambda b: measure(make, b, args), args.clip_batches, args.device
        )
        del parts, make
    if "cross-encoder" in args.models:
        model = build_ce(args)
        make = lambda b: ce_step(args, model, b)  # noqa: E731
        results += run_sizes(
            "cross-encoder", model, lambda b: measure(make, b, args), args.ce_batches, args.device
        )
    cuda = args.device.startswith("cuda")
    report = {
        "smoke": args.smoke,
        "machine": {
            "device": torch.cuda.get_device_name() if cuda else platform.processor() or "cpu",
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "transformers": transformers.__version__,
            "dtype": "bf16" if args.amp else "fp32",
        },
        "params": {k: v for k, v in vars(args).items() if k not in ("out", "dtype")},
        "results": results,
        "command": " ".join(["python benchmarks/gpu/train_bench.py", *(argv or sys.argv[1:])]),
        "wall_s": time.perf_counter() - started,
    }
    save_report(report, args.out, "train_bench", markdown)


if __name__ == "__main__":
    main()
