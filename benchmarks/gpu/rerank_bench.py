"""Stage-2 reranker throughput on one GPU: pairs per second and peak memory, in bf16.

Two architectures, built from their configs with random weights (no hub, no tokenizer):

* ``cross-encoder``: bge-reranker-v2-m3's XLMRobertaForSequenceClassification (24 layers,
  width 1024, vocab 250002), pairs of ``--ce-tokens`` tokens (default 64), sigmoid score.
* ``qwen-vl``: Qwen2-VL-2B-Instruct's Qwen2VLForConditionalGeneration (28 text layers,
  width 1536; 32-block vision tower), each pair one chat prompt holding two 224x224
  images (64 visual tokens each, as the reranker's default min_pixels keeps them) and
  two titles; the score is softmax over the yes/no logits at the last position
  (``logits_to_keep=1``, no KV cache), as ``rerank/qwen_vl.py`` computes it.

Random token ids and pixel tensors go straight to the models, shaped as the processors
would shape them. Per batch size: warm-up passes, then timed passes between
``torch.cuda.synchronize()`` calls; peak memory from ``torch.cuda.max_memory_allocated``.
Writes ``rerank_bench.json`` and ``rerank_bench.md`` to ``--out`` ($OUT if set, else
benchmarks/results/). Measured, not asserted.

    python benchmarks/gpu/rerank_bench.py            # full: needs CUDA; estimated 1-3 min on an H100
    python benchmarks/gpu/rerank_bench.py --smoke    # tiny configs on the CPU, seconds
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
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

# bge-reranker-v2-m3 (XLM-RoBERTa-large) and Qwen2-VL-2B-Instruct, as in their config.json.
CE_FULL = {
    "vocab_size": 250002,
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
    "max_position_embeddings": 8194,
    "type_vocab_size": 1,
    "layer_norm_eps": 1e-5,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
}
CE_SMOKE = {**CE_FULL, "vocab_size": 1000, "hidden_size": 32, "num_hidden_layers": 2}
CE_SMOKE |= {"num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 130}
VL_TEXT_FULL = {
    "vocab_size": 151936,
    "hidden_size": 1536,
    "intermediate_size": 8960,
    "num_hidden_layers": 28,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
    "tie_word_embeddings": True,
}
VL_VISION_FULL = {
    "depth": 32,
    "embed_dim": 1280,
    "hidden_size": 1536,
    "num_heads": 16,
    "mlp_ratio": 4,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "in_channels": 3,
}
VL_TEXT_SMOKE = {**VL_TEXT_FULL, "hidden_size": 32, "intermediate_size": 64}
VL_TEXT_SMOKE |= {"num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1}
VL_TEXT_SMOKE["rope_scaling"] = {"type": "mrope", "mrope_section": [2, 3, 3]}
VL_VISION_SMOKE = {**VL_VISION_FULL, "depth": 1, "embed_dim": 32, "hidden_size": 32}
VL_VISION_SMOKE |= {"num_heads": 2, "mlp_ratio": 2}
VL_IDS = {"vision_start": 151652, "vision_end": 151653, "image": 151655, "video": 151656}
# Text tokens of one prompt around the images: system turn, instruction, "Listing A:" ...
PROMPT_TOKENS = {"system": 20, "instruction": 16, "label": 4, "tail": 5}


def attention() -> str:
    """What the rerankers pick: flash-attention 2 when installed, else torch SDPA."""
    return "flash_attention_2" if importlib.util.find_spec("flash_attn") else "sdpa"


def build_ce(cfg: dict[str, Any], device: str, dtype: torch.dtype) -> torch.nn.Module:
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    config = XLMRobertaConfig(**cfg, num_labels=1)
    with torch.device(device):
        model = XLMRobertaForSequenceClassification._from_config(
            config, dtype=dtype, attn_implementation="sdpa"
        )
    return model.to(device).eval()


def build_vl(text: dict, vision: dict, device: str, dtype: torch.dtype, attn: str) -> Any:
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    config = Qwen2VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=VL_IDS["image"],
        video_token_id=VL_IDS["video"],
        vision_start_token_id=VL_IDS["vision_start"],
        vision_end_token_id=VL_IDS["vision_end"],
        tie_word_embeddings=text["tie_word_embeddings"],
    )
    with torch.device(device):
        model = Qwen2VLForConditionalGeneration._from_config(
            config, dtype=dtype, attn_implementation=attn
        )
    return model.to(device).eval()


def ce_step(model: Any, batch: int, tokens: int, vocab: int, device: str) -> Callable[[], Any]:
    """One scoring pass over ``batch`` pairs of ``tokens`` tokens (<s> a </s></s> b </s>)."""
    ids = torch.randint(5, vocab, (batch, tokens), device=device)
    ids[:, 0], ids[:, -1] = 0, 2
    mask = torch.ones_like(ids)

    def step() -> Any:
        return torch.sigmoid(model(input_ids=ids, attention_mask=mask).logits.float())

    return step


def vl_step(model: Any, batch: int, args: argparse.Namespace, device: str) -> Callable[[], Any]:
    """One scoring pass over ``batch`` pairs, each two images and two titles in one prompt."""
    vision = model.config.vision_config
    patch, merge = vision.patch_size, vision.spatial_merge_size
    side = max(patch * merge, round(args.image_size / (patch * merge)) * patch * merge)
    grid = side // patch  # patches per side; 224 -> 16
    image_tokens = grid * grid // merge**2  # 224 -> 64

    def text(n: int) -> list[int]:
        return torch.randint(1000, 150000, (n,)).tolist()

    image = [VL_IDS["vision_start"], *[VL_IDS["image"]] * image_tokens, VL_IDS["vision_end"]]
    row = text(PROMPT_TOKENS["system"] + PROMPT_TOKENS["instruction"])
    for _ in ("A", "B"):
        row += text(PROMPT_TOKENS["label"]) + image + text(args.vl_title_tokens)
    row += text(PROMPT_TOKENS["tail"])
    ids = torch.tensor([row] * batch, device=device)
    inputs: dict[str, Any] = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "pixel_values": torch.randn(
            2 * batch * grid * grid,
            vision.in_channels * vision.temporal_patch_size * patch * patch,
            device=device,
            dtype=model.dtype,
        ),
        "image_grid_thw": torch.tensor([[1, grid, grid]] * (2 * batch), device=device),
    }
    if "mm_token_type_ids" in inspect.signature(model.forward).parameters:
        inputs["mm_token_type_ids"] = (ids == VL_IDS["image"]).int()
    yes_no = [9454, 2753]  # any two ids: the cost is the same

    def step() -> Any:
        out = model(**inputs, logits_to_keep=1, use_cache=False)
        return torch.softmax(out.logits[:, -1, yes_no].float(), dim=-1)[:, 0]

    step.tokens = len(row)  # type: ignore[attr-defined]
    return step


def measure(
    make: Callable[[int], Callable[[], Any]], batch: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Pairs/s of one batch size (inference mode)."""
    step = make(batch)
    t = time_step(step, args, inference=True)
    return {
        "iters": t["iters"],
        "ms_per_batch": 1000 * t["elapsed"] / t["iters"],
        "pairs_per_s": batch * t["iters"] / t["elapsed"],
        "peak_mem_gib": t["peak_mem_gib"],
        "tokens_per_pair": getattr(step, "tokens", args.ce_tokens),
    }


def machine(args: argparse.Namespace) -> dict[str, Any]:
    import transformers

    cuda = args.device.startswith("cuda")
    return {
        "device": torch.cuda.get_device_name() if cuda else platform.processor() or "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "dtype": str(args.dtype).removeprefix("torch."),
        "attention_vl": attention() if cuda else "sdpa",
    }


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    cols = ["model", "batch", "tokens/pair", "pairs/s", "ms/batch", "peak GiB"]
    lines = [
        "# Reranker throughput" + (" (smoke: tiny configs)" if report["smoke"] else ""),
        "",
        f"{m['device']}; torch {m['torch']} (CUDA {m['cuda']}), transformers "
        f"{m['transformers']}; {m['dtype']}; qwen-vl attention {m['attention_vl']}. "
        "Random weights, architectures of bge-reranker-v2-m3 and Qwen2-VL-2B-Instruct; "
        f"qwen-vl pairs hold two {report['params']['image_size']}px images and two titles.",
        "",
        "| " + " | ".join(cols) + " |",
        "| --- |" + " ---: |" * (len(cols) - 1),
    ]
    for r in report["results"]:
        if r.get("oom"):
            cells = [r["model"], str(r["batch_size"]), "", "out of memory", "", ""]
        else:
            peak = "" if r["peak_mem_gib"] is None else f"{r['peak_mem_gib']:.2f}"
            cells = [r["model"], str(r["batch_size"]), str(r["tokens_per_pair"])]
            cells += [f"{r['pairs_per_s']:,.1f}", f"{r['ms_per_batch']:.1f}", peak]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Command: `{report['command']}` ({report['wall_s']:.0f} s).", ""]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny configs on the CPU")
    p.add_argument("--models", nargs="+", default=["cross-encoder", "qwen-vl"])
    p.add_argument("--ce-batches", type=int, nargs="+", default=[8, 16, 32, 64, 128])
    p.add_argument("--vl-batches", type=int, nargs="+", default=[4, 8, 16, 32])
    p.add_argument("--ce-tokens", type=int, default=64, help="tokens per cross-encoder pair")
    p.add_argument("--vl-title-tokens", type=int, default=24, help="tokens per title")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--min-iters", type=int, default=10)
    p.add_argument("--min-seconds", type=float, default=3.0)
    default_out = os.environ.get("OUT") or "benchmarks/results"
    p.add_argument("--out", type=Path, default=Path(default_out))
    args = p.parse_args(argv)
    if args.smoke:
        args.device, args.dtype = "cpu", torch.float32
        args.ce_batches, args.vl_batches = args.ce_batches[:2], args.vl_batches[:2]
        args.warmup, args.min_iters, args.min_seconds = 1, 2, 0.1
    else:
        if not torch.cuda.is_available():
            p.error("the full run needs a CUDA GPU; use --smoke on a CPU")
        args.device, args.dtype = "cuda", torch.bfloat16
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    torch.manual_seed(0)
    results: list[dict[str, Any]] = []
    if "cross-encoder" in args.models:
        cfg = CE_SMOKE if args.smoke else CE_FULL
        model = build_ce(cfg, args.device, args.dtype)
        make = lambda b: ce_step(model, b, args.ce_tokens, cfg["vocab_size"], args.device)  # noqa: E731
        results += run_sizes(
            "cross-encoder", model, lambda b: measure(make, b, args), args.ce_batches, args.device
        )
        del model
    if "qwen-vl" in args.models:
        text, vision = (
            (VL_TEXT_SMOKE, VL_VISION_SMOKE) if args.smoke else (VL_TEXT_FULL, VL_VISION_FULL)
        )
        attn = attention() if args.device.startswith("cuda") else "sdpa"
        model = build_vl(text, vision, args.device, args.dtype, attn)
        make = lambda b: vl_step(model, b, args, args.device)  # noqa: E731
        results += run_sizes(
            "qwen-vl", model, lambda b: measure(make, b, args), args.vl_batches, args.device
        )
    report = {
        "smoke": args.smoke,
        "machine": machine(args),
        "params": {k: v for k, v in vars(args).items() if k not in ("out", "dtype")},
        "results": results,
        "command": " ".join(["python benchmarks/gpu/rerank_bench.py", *(argv or sys.argv[1:])]),
        "wall_s": time.perf_counter() - started,
    }
    save_report(report, args.out, "rerank_bench", markdown)


if __name__ == "__main__":
    main()
