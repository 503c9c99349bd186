"""Helpers shared by the record readers: JSONL / CSV rows, image paths, dataset names."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from retrieval.data.images import ZIP_SEP
from retrieval.errors import UsageError


def absolute(path: str | Path) -> Path:
    """An absolute, normalised path (symlinks kept, unlike ``Path.resolve``)."""
    return Path(os.path.abspath(os.path.expanduser(str(path))))


def dataset_name(path: str | Path) -> str:
    """The name of a dataset: its folder name, or its file name without the suffix."""
    p = absolute(path)
    return p.stem if p.is_file() else p.name


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every non-blank line; a bad line is a UsageError."""
    try:
        handle = path.open(encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UsageError(f"{path}:{lineno}: bad JSON ({exc.msg})") from exc
            if not isinstance(record, dict):
                raise UsageError(f"{path}:{lineno}: expected a JSON object per line")
            yield lineno, record


def read_json_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Records of a ``.json`` file: a JSON array of objects, or JSON lines."""
    with path.open(encoding="utf-8-sig") as handle:
        head = handle.read(4096).lstrip()
    if not head.startswith("["):
        yield from read_jsonl(path)
        return
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}:{exc.lineno}: bad JSON ({exc.msg})") from exc
    for i, record in enumerate(data, start=1):
        if not isinstance(record, dict):
            raise UsageError(f"{path}: item {i} is not a JSON object")
        yield i, record


def read_csv(path: Path, required: tuple[str, ...] = ()) -> Iterator[tuple[int, dict[str, str]]]:
    """``(line number, row)`` for every data row of a CSV file with a header; a missing
    ``required`` column is a UsageError."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        require_columns(list(reader.fieldnames or []), required, path)
        for row in reader:
            yield reader.line_num, row


def require_columns(columns: list[str] | None, required: tuple[str, ...], source: Path) -> None:
    """Raise a UsageError naming the first required column that is missing."""
    present = set(columns or ())
    for column in required:
        if column not in present:
            raise UsageError(
                f"{source}: missing column {column!r} (has: {', '.join(columns or [])})"
            )


def image_ref(value: Any, base: Path) -> str | None:
    """An image reference from a record: empty means none; relative paths resolve
    against ``base``; absolute paths, zip refs and URLs are kept as they are."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    if ZIP_SEP in text or "://" in text or Path(text).is_absolute():
        return text
    return str(base / text)


def text_of(value: Any) -> str:
    """A title-like value as text (``None`` is empty)."""
    return "" if value is None else str(value)


def optional_text(value: Any) -> str | None:
    """A label-like value as text; ``None`` or blank is no value."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None
