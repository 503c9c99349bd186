"""Local encoder folders a collection was indexed with, and what to say when one is gone.

A collection's metadata may record, under ``rebuild``, the command that rebuilds each
encoder folder it was made with (``{folder: command}``; ``search eval --fine-tune`` writes
it for the encoders it fine-tuned). ``check_folders`` refuses, in one line naming the
folder and that command, encoder specs whose local folder is gone, before a model
loader fails on the path with a message of its own. A folder is gone when it holds no
saved encoder (``encoder_saved``: what sentence-transformers and timm write) for a
recorded folder, or when an absolute model path does not exist at all; a hub name is
never checked here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from retrieval.errors import UsageError
from retrieval.types import ComponentSpec

REBUILD_KEY = "rebuild"  # collection metadata: {encoder folder: the command that rebuilds it}
# what a fine-tuned encoder folder holds once saved: sentence-transformers, timm
ENCODER_FILES = ("modules.json", "timm_config.json")


def encoder_saved(folder: str | Path) -> bool:
    """Whether ``folder`` holds a saved encoder (sentence-transformers or timm)."""
    return any((Path(folder) / name).is_file() for name in ENCODER_FILES)


def rebuild_commands(meta: Mapping[str, Any]) -> dict[str, str]:
    """The ``{folder: command}`` a collection's metadata records (nothing unreadable)."""
    record = meta.get(REBUILD_KEY)
    if not isinstance(record, Mapping):
        return {}
    return {str(k): v for k, v in record.items() if isinstance(v, str) and v.strip()}


def missing_folder(spec: str, rebuild: Mapping[str, str]) -> str | None:
    """The local folder ``spec`` loads its model from when that folder is gone, else None."""
    model = ComponentSpec.parse(spec).model
    if not model:
        return None
    if model in rebuild:
        return None if encoder_saved(model) else model
    path = Path(model)
    return model if path.is_absolute() and not path.exists() else None


def check_folders(specs: Iterable[str], meta: Mapping[str, Any], collection: str) -> None:
    """Refuse, in one line naming it, a local encoder folder of ``collection`` that is gone,
    with the command that rebuilds it where the collection's metadata records one."""
    rebuild = rebuild_commands(meta)
    for spec in specs:
        folder = missing_folder(spec, rebuild)
        if folder is None:
            continue
        parsed = ComponentSpec.parse(spec)
        vector = parsed.options.get("name", parsed.kind)
        command = rebuild.get(folder)
        fix = (
            f"rebuild it with: {command}"
            if command
            else "no command to rebuild it is recorded: index the dataset again with "
            "encoders that exist (`search index DATASET --encoder SPEC --recreate`)"
        )
        raise UsageError(
            f"collection {collection!r} was indexed with the encoder {vector!r} of folder "
            f"{folder}, which is gone; {fix}"
        )
