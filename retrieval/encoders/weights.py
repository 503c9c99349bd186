"""Loading a checkpoint's tensors into a torch model, by name or by order, shape-checked.

Checkpoints are read without executing anything: ``.safetensors`` through safetensors,
anything else through ``torch.load(weights_only=True)``. Two ways to match tensors:

- ``name`` (default): the checkpoint's keys are the model's (a ``state_dict`` /
  ``model`` / ``module.`` wrapper is unwrapped); keys listed in ``optional`` may be
  missing (e.g. a classifier the encoder drops anyway);
- ``order``: the i-th tensor of the checkpoint goes to the i-th tensor of the model's
  ``state_dict``; both must hold the same number and every shape must agree. That is
  how a checkpoint of another code base's key layout loads when its tensors come in
  the same order (efficientnet_pytorch's ``_blocks.0._depthwise_conv.weight`` is
  timm's ``blocks.0.0.conv_dw.weight``).

Either way the first tensor whose shape does not fit is named in a one-line error.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path
from typing import Any

from retrieval.errors import SearchError, UsageError

log = logging.getLogger(__name__)

KEY_MAPS = ("name", "order")


class WeightsMismatchError(SearchError):
    """A checkpoint whose tensors do not fit the model it is loaded into."""


def read_state_dict(path: str | Path) -> dict[str, Any]:
    """The tensors of a checkpoint file, in file order (never unpickles code)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            import safetensors.torch

            state: Any = safetensors.torch.load_file(str(path), device="cpu")
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt files, pickles of arbitrary objects
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"cannot read weights {path}: {first}") from exc
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise UsageError(f"{path} holds no tensor state dict")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return dict(state)


def map_by_order(source: dict[str, Any], target: dict[str, Any], where: str) -> dict[str, Any]:
    """Rename ``source``'s tensors to ``target``'s keys position by position; counts and
    every shape must agree (the first mismatch is named)."""
    src, dst = list(source.items()), list(target.items())
    for i, ((skey, sval), (tkey, tval)) in enumerate(zip(src, dst)):
        if tuple(sval.shape) != tuple(tval.shape):
            raise WeightsMismatchError(
                f"{where}: tensor {i} {skey!r} has shape {tuple(sval.shape)} but the model's "
                f"{tkey!r} needs {tuple(tval.shape)}; these weights are not of this model"
            )
    if len(src) != len(dst):
        raise WeightsMismatchError(
            f"{where}: {len(src)} tensors but the model has {len(dst)} "
            f"(first unmatched: {(src[len(dst)][0] if len(src) > len(dst) else dst[len(src)][0])!r})"
        )
    return {tkey: sval for (tkey, _), (_, sval) in zip(dst, src)}


def check_by_name(
    source: dict[str, Any], target: dict[str, Any], where: str, optional: Collection[str] = ()
) -> None:
    """Every model tensor must be in ``source`` with its shape (``optional`` ones may be
    absent), and ``source`` must hold nothing else."""
    for key, tval in target.items():
        sval = source.get(key)
        if sval is None:
            if key in optional:
                continue
            raise WeightsMismatchError(
                f"{where}: no tensor {key!r} (the checkpoint's keys are of another layout? "
                "try key_map=order)"
            )
        if tuple(sval.shape) != tuple(tval.shape):
            raise WeightsMismatchError(
                f"{where}: tensor {key!r} has shape {tuple(sval.shape)} but the model needs "
                f"{tuple(tval.shape)}; these weights are not of this model"
            )
    extra = [k for k in source if k not in target]
    if extra:
        raise WeightsMismatchError(
            f"{where}: {len(extra)} tensors the model does not have, first {extra[0]!r}"
        )


def load_weights(
    model: Any, path: str | Path, key_map: str = "name", optional: Collection[str] = ()
) -> None:
    """Load the checkpoint at ``path`` into ``model`` (see the module doc for ``key_map``)."""
    if key_map not in KEY_MAPS:
        raise UsageError(f"unknown key_map {key_map!r}; known: {', '.join(KEY_MAPS)}")
    source = read_state_dict(path)
    target = model.state_dict()
    where = f"weights {Path(path).name}"
    if key_map == "order":
        source = map_by_order(source, target, where)
    else:
        check_by_name(source, target, where, optional)
    missing, _ = model.load_state_dict(source, strict=False)
    if missing:
        log.info("%s: kept the model's own %d tensors (%s ...)", where, len(missing), missing[0])
