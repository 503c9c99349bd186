"""Stage-1 encoding throughput on one GPU: listings per second of the models that fill a
catalogue's vectors, at several batch sizes (the bound behind docs/scale.md's sizing).

* ``text``: the project's own ``text`` encoder (the packaged all-MiniLM-L6-v2, real
  weights) on synthetic product titles of ~20 words, fp16 on CUDA: tokenisation included.
* ``clip-image ViT-B-32`` / ``ViT-B-16``: open_clip image towers with random weights on
  random 224x224 pixel tensors, fp16: the model's bound, without JPEG decoding (the
  encoders decode in DataLoader workers beside it).

Writes ``encode_bench.json`` / ``.md`` to ``--out`` ($OUT if set, else benchmarks/results/).

    python benchmarks/gpu/encode_bench.py          # needs CUDA; about a minute on an H100
    python benchmarks/gpu/encode_bench.py --smoke  # small sizes on the CPU, seconds
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # gpu_timing beside this file
from gpu_timing import run_sizes, save_report, time_step  # noqa: E402

WORDS = (
    "samsung galaxy a52 128gb black original garansi resmi xiaomi redmi note pro max apple "
    "iphone case silicone nike air zoom pegasus running shoe size sony wireless headphones"
).split()


def titles(n: int) -> list[str]:
    rng = random.Random(0)
    return [" ".join(rng.choices(WORDS, k=20)) for _ in range(n)]


def text_measure(args: argparse.Namespace):
    from retrieval.encoders import build_encoder
    from retrieval.types import Product

    precision = "fp16" if args.device.startswith("cuda") else "fp32"

    def measure(batch: int) -> dict[str, Any]:
        enc = build_encoder(f"text,device={args.device},batch_size={batch}")
        if precision == "fp16":
            enc.model.half()
        products = [Product(id=str(i), title=t) for i, t in enumerate(titles(batch))]
        t = time_step(lambda: enc.encode(products), args, inference=True)
        return {"listings_per_s": batch * t["iters"] / t["elapsed"], **t}

    return measure


def clip_model(arch: str, device: str):
    import open_clip

    model = open_clip.create_model(arch, pretrained=None, device=device)
    return model.visual.half() if device.startswith("cuda") else model.visual


def clip_measure(model: Any, args: argparse.Namespace):
    dtype = next(model.parameters()).dtype

    def measure(batch: int) -> dict[str, Any]:
        pixels = torch.randn(batch, 3, 224, 224, device=args.device, dtype=dtype)
        t = time_step(lambda: model(pixels), args, inference=True)
        return {"listings_per_s": batch * t["iters"] / t["elapsed"], **t}

    return measure


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Encoding throughput" + (" (smoke)" if report["smoke"] else ""),
        "",
        f"{report['machine']}; torch {torch.__version__}; fp16 on CUDA.",
        "",
        "| model | batch | listings/s | peak GiB |",
        "| --- | ---: | ---: | ---: |",
    ]
    for r in report["results"]:
        if r.get("oom"):
            lines.append(f"| {r['model']} | {r['batch_size']} | out of memory | |")
            continue
        peak = "" if r["peak_mem_gib"] is None else f"{r['peak_mem_gib']:.2f}"
        lines.append(f"| {r['model']} | {r['batch_size']} | {r['listings_per_s']:,.0f} | {peak} |")
    lines += ["", f"Command: `{report['command']}` ({report['wall_s']:.0f} s).", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="small sizes on the CPU")
    ap.add_argument("--device", default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--min-iters", type=int, default=5)
    ap.add_argument("--min-seconds", type=float, default=3.0)
    args = ap.parse_args()
    args.device = args.device or ("cpu" if args.smoke or not torch.cuda.is_available() else "cuda")
    if args.smoke:
        args.warmup, args.min_iters, args.min_seconds = 1, 1, 0.0
    start = time.perf_counter()
    batches = [8, 32] if args.smoke else [64, 256, 1024]
    results = run_sizes("text (MiniLM-L6)", torch.nn.Linear(1, 1), text_measure(args),
                        batches, args.device)  # fmt: skip
    for arch in ["ViT-B-32"] if args.smoke else ["ViT-B-32", "ViT-B-16"]:
        model = clip_model(arch, args.device)
        results += run_sizes(f"clip-image {arch}", model, clip_measure(model, args),
                             [4, 8] if args.smoke else [64, 256, 512], args.device)  # fmt: skip
    cuda = args.device.startswith("cuda")
    report = {
        "smoke": args.smoke,
        "machine": torch.cuda.get_device_name() if cuda else platform.processor() or "cpu",
        "results": results,
        "command": " ".join(["python", *sys.argv]),
        "wall_s": time.perf_counter() - start,
    }
    out = args.out or Path(os.environ.get("OUT") or Path(__file__).parents[1] / "results")
    save_report(report, out, "encode_bench", markdown)


if __name__ == "__main__":
    main()
