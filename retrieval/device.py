"""Device and precision choice for every torch model (encoders, rerankers, training),
and the check that an optional extra is installed.

torch is imported inside each function, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

from retrieval.errors import MissingExtraError, UsageError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "fp16", "bf16")


def pick_device(requested: str | None = "auto") -> str:
    """The torch device to run on: ``cuda``, ``mps`` or ``cpu`` for ``auto`` (or None),
    else the requested one (``cuda:1`` allowed) once checked to exist."""
    import torch

    choice = (requested or "auto").strip().lower()
    if choice == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    kind = choice.split(":", 1)[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {requested!r} asked for, but torch sees no CUDA device")
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise UsageError(f"device {requested!r} asked for, but MPS is not available")
    if kind not in ("cuda", "mps", "cpu"):
        raise UsageError(f"unknown device {requested!r}; use auto, cpu, cuda, cuda:N or mps")
    return choice


def autocast_dtype(device: str, precision: str = "auto") -> torch.dtype | None:
    """The reduced precision to compute in on ``device``, or None for fp32.

    ``auto``: bf16 on CUDA when the card supports it, else fp16; fp16 on MPS; fp32 on
    CPU. ``fp32``, ``fp16`` and ``bf16`` force a choice."""
    import torch

    precision = (precision or "auto").strip().lower()
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return None
    if precision == "fp16":
        return torch.float16
    if precision == "bf16":
        return torch.bfloat16
    kind = device.split(":", 1)[0]
    if kind == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if kind == "mps":
        return torch.float16
    return None


def model_dtype(device: str, precision: str | None = "auto") -> torch.dtype:
    """The dtype a model's weights run in: ``autocast_dtype``'s choice, fp32 for None."""
    import torch

    return autocast_dtype(device, precision or "auto") or torch.float32


def autocast(device: str, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` on ``device`` in ``dtype``; a no-op context for fp32."""
    import torch

    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.split(":", 1)[0], dtype=dtype)


def require_extra(extra: str, packages: dict[str, str]) -> None:
    """Import each module of ``packages`` (module -> pip name); a missing one raises
    MissingExtraError naming the extra to install."""
    import importlib

    for module, package in packages.items():
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise MissingExtraError(extra, package) from exc
