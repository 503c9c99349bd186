"""What the torch rerankers share: option parsing, device and dtype choice, and a batch
loop that halves the batch size when the GPU runs out of memory.

Torch is imported inside the functions that need it, so parsing options stays light.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from retrieval.errors import SearchError, UsageError

log = logging.getLogger(__name__)
T = TypeVar("T")

if TYPE_CHECKING:
    import torch

_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def int_option(name: str, value: str | int, *, minimum: int = 1) -> int:
    """An integer option from its string form; a bad value is a UsageError."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"option {name}={value!r} is not an integer") from None
    if number < minimum:
        raise UsageError(f"option {name}={number} must be at least {minimum}")
    return number


def choice_option(name: str, value: str, choices: Sequence[str]) -> str:
    """A lower-cased option that must be one of ``choices``."""
    value = value.strip().lower()
    if value not in choices:
        raise UsageError(f"option {name}={value!r}; expected one of {', '.join(choices)}")
    return value


def resolve_device(option: str | None) -> str:
    """``auto`` (or nothing) picks cuda, then mps, then cpu; ``cpu``, ``cuda``, ``cuda:N``
    and ``mps`` are checked to exist (as the encoders do)."""
    import torch

    choice = (option or "auto").strip().lower()
    mps = getattr(torch.backends, "mps", None)
    has_mps = mps is not None and mps.is_available()
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    kind = choice.split(":", 1)[0]
    if kind not in ("cuda", "mps", "cpu"):
        raise UsageError(f"unknown device {option!r}; use auto, cpu, cuda, cuda:N or mps")
    if (kind == "cuda" and not torch.cuda.is_available()) or (kind == "mps" and not has_mps):
        raise UsageError(f"device {option!r} asked for, but torch does not see it")
    return choice


def resolve_dtype(device: str, precision: str | None) -> torch.dtype:
    """The dtype a model runs in. ``auto``: bf16 on a CUDA card that supports it (else
    fp16), fp16 on mps, fp32 on cpu; ``fp32``, ``fp16`` and ``bf16`` force a choice."""
    import torch

    choice = choice_option("precision", precision or "auto", ("auto", *_DTYPES))
    if choice != "auto":
        return getattr(torch, _DTYPES[choice])
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.startswith("mps"):
        return torch.float16
    return torch.float32


def run_batches(
    items: Sequence[T],
    batch_size: int,
    score: Callable[[Sequence[T]], list[float]],
    *,
    name: str,
) -> tuple[list[float], int]:
    """Score ``items`` in batches, in order; return the scores and the batch size that
    worked. When a batch runs out of GPU memory, halve the batch size (for the rest of
    the run) and retry it; below 1 raise SearchError."""
    import torch

    out: list[float] = []
    size, start = batch_size, 0
    while start < len(items):
        batch = items[start : start + size]
        try:
            scores = score(batch)
        except torch.cuda.OutOfMemoryError as exc:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if size <= 1:
                raise SearchError(f"{name}: out of GPU memory even at batch size 1") from exc
            size //= 2
            log.warning("%s: out of GPU memory; retrying with batch size %d", name, size)
            continue
        if len(scores) != len(batch):
            raise RuntimeError(f"{name} gave {len(scores)} scores for {len(batch)} pairs")
        out.extend(scores)
        start += len(batch)
    return out, size
