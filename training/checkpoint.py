"""Checkpoints of the accelerate loop in formats that cannot run code when read back.

``Accelerator.save_state`` pickles registered objects into ``custom_checkpoint_N.pkl``
and ``load_state`` unpickles them with ``weights_only=False``: a file planted in the
output folder would run code on ``--resume``. This module writes what a resumed run
needs in plain formats and reads back only those files, by name:

- ``model.safetensors``: the unwrapped model's weights;
- ``optimizer.pt``: the optimiser state (tensors and numbers; read with
  ``torch.load(weights_only=True)``), one ``optimizer-RANK.pt`` per process under
  DeepSpeed, whose ZeRO state is sharded;
- ``scheduler.json`` and ``scaler.json``: the LR schedule and the AMP grad scaler;
- ``rng-RANK.json`` (python and numpy) and ``rng-RANK.safetensors`` (torch, CUDA) per
  process.

Anything else in the folder is ignored. A file that does not parse is one line naming it.
"""

from __future__ import annotations

import io
import json
import logging
import random
from pathlib import Path
from typing import Any

from retrieval.atomic import write_bytes, write_json
from retrieval.errors import SearchError

log = logging.getLogger(__name__)

MODEL_FILE = "model.safetensors"


def _optimizer_file(acc: Any) -> str:
    from accelerate.utils import DistributedType

    deepspeed = acc.distributed_type == DistributedType.DEEPSPEED
    return f"optimizer-{acc.process_index}.pt" if deepspeed else "optimizer.pt"


def _cpu_tensors(state: dict[str, Any]) -> dict[str, Any]:
    """Contiguous CPU copies; tensors sharing storage (tied weights) get their own."""
    out, seen = {}, set()
    for name, value in state.items():
        tensor = value.detach().cpu().contiguous()
        ptr = tensor.untyped_storage().data_ptr()
        out[name] = tensor.clone() if ptr in seen else tensor
        seen.add(ptr)
    return out


def save_checkpoint(acc: Any, model: Any, optimizer: Any, scheduler: Any, folder: Path) -> None:
    """Write the run's state to ``folder`` (every process calls this)."""
    import numpy as np
    import torch
    from safetensors.torch import save

    folder.mkdir(parents=True, exist_ok=True)
    weights = acc.get_state_dict(model)  # gathers ZeRO-3 shards: every process calls it
    optimizer_file = _optimizer_file(acc)
    if acc.is_main_process or optimizer_file != "optimizer.pt":
        buffer = io.BytesIO()
        torch.save(optimizer.state_dict(), buffer)
        write_bytes(folder / optimizer_file, buffer.getvalue())
    if acc.is_main_process:
        write_bytes(folder / MODEL_FILE, save(_cpu_tensors(weights)))
        write_json(folder / "scheduler.json", scheduler.state_dict())
        if acc.scaler is not None:
            write_json(folder / "scaler.json", acc.scaler.state_dict())
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    rank = acc.process_index
    write_json(
        folder / f"rng-{rank}.json",
        {
            "python": [version, list(internal), gauss],
            "numpy": [kind, keys.tolist(), pos, has_gauss, cached],
        },
    )
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors.update({f"cuda{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    write_bytes(folder / f"rng-{rank}.safetensors", save(tensors))


def load_checkpoint(acc: Any, model: Any, optimizer: Any, scheduler: Any, folder: Path) -> None:
    """Restore what ``save_checkpoint`` wrote; a missing or unreadable file is a
    SearchError naming it (nothing in the folder is unpickled)."""
    import numpy as np
    import torch
    from safetensors.torch import load, load_file

    rank = acc.process_index
    current = folder / MODEL_FILE
    try:
        acc.unwrap_model(model).load_state_dict(load_file(str(current)))
        current = folder / _optimizer_file(acc)
        optimizer.load_state_dict(torch.load(current, map_location="cpu", weights_only=True))
        current = folder / "scheduler.json"
        scheduler.load_state_dict(json.loads(current.read_text()))
        current = folder / "scaler.json"
        if acc.scaler is not None and current.is_file():
            acc.scaler.load_state_dict(json.loads(current.read_text()))
        current = folder / f"rng-{rank}.json"
        states = json.loads(current.read_text())
        version, internal, gauss = states["python"]
        random.setstate((version, tuple(internal), gauss))
        kind, keys, pos, has_gauss, cached = states["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
        current = folder / f"rng-{rank}.safetensors"
        tensors = load(current.read_bytes())
        torch.set_rng_state(tensors["torch"])
        cuda = [tensors[f"cuda{i}"] for i in range(len(tensors)) if f"cuda{i}" in tensors]
        if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
    except FileNotFoundError:
        raise SearchError(
            f"cannot resume from {folder}: {current.name} is missing (a checkpoint of "
            "another version?); delete the folder to start afresh"
        ) from None
    except Exception as exc:  # any parse failure is the same fault: a file not ours
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SearchError(
            f"cannot resume from {folder}: {current.name} is damaged or was not written "
            f"by this run ({first[:200]})"
        ) from None
