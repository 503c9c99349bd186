"""Helpers shared by the record readers: JSONL / CSV rows, image paths, dataset names."""

from __future__ import annotations

import csv
import io
import json
import os
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from retrieval.data.images import ZIP_SEP
from retrieval.errors import UsageError

# Unicode categories refused in ids: control, format (zero-width, bidi marks), surrogates
BAD_ID = ("Cc", "Cf", "Cs")


def absolute(path: str | Path) -> Path:
    """An absolute, normalised path (symlinks kept, unlike ``Path.resolve``)."""
    return Path(os.path.abspath(os.path.expanduser(str(path))))


def dataset_path(path: str | Path) -> Path:
    """``path`` made ``absolute``; one that does not exist is a UsageError."""
    p = absolute(path)
    if not p.exists():
        raise UsageError(f"dataset not found: {path}")
    return p


def dataset_name(path: str | Path) -> str:
    """The name of a dataset: its folder name, or its file name without the suffix."""
    p = absolute(path)
    return p.stem if p.is_file() else p.name


def decode_text(data: bytes, source: str | Path, first_line: int = 1) -> str:
    """UTF-8 text (a leading BOM dropped); other bytes are a UsageError naming the line
    (``first_line``: the number of the first line of ``data`` in its file)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        lineno = data.count(b"\n", 0, exc.start) + first_line
        raise UsageError(
            f"{source}:{lineno}: not UTF-8 text (byte 0x{data[exc.start]:02x}); "
            "save the file as UTF-8"
        ) from exc


def read_bytes(path: Path) -> bytes:
    """A file's bytes; an unreadable file (missing, a folder, no permission) is a UsageError."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc


def parse_json(text: str, where: str) -> Any:
    """``json.loads`` whose every failure is a UsageError naming ``where``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{where}: bad JSON ({exc.msg})") from exc
    except (ValueError, RecursionError) as exc:  # 5,000-digit numbers, deep nesting
        raise UsageError(f"{where}: bad JSON ({type(exc).__name__})") from exc


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every non-blank line; a bad line is a UsageError."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with handle:
        for lineno, raw in enumerate(handle, start=1):
            line = decode_text(raw, path, lineno)
            if not line.strip():
                continue
            record = parse_json(line, f"{path}:{lineno}")
            if not isinstance(record, dict):
                raise UsageError(f"{path}:{lineno}: expected a JSON object per line")
            yield lineno, record


def read_json_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Records of a ``.json`` file: a JSON array of objects, or JSON lines."""
    text = decode_text(read_bytes(path), path)
    if not text.lstrip().startswith("["):
        yield from read_jsonl(path)
        return
    data = parse_json(text, str(path))
    if not isinstance(data, list):
        raise UsageError(f"{path}: expected a JSON array of objects")
    for i, record in enumerate(data, start=1):
        if not isinstance(record, dict):
            raise UsageError(f"{path}: item {i} is not a JSON object")
        yield i, record


def csv_rows(
    text: str, source: str | Path, required: tuple[str, ...] = ()
) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """Header and ``(first line number, row)`` pairs of CSV text. Malformed CSV (an unterminated
    quote that would swallow the rest of the file, text after a closing quote) is a
    UsageError naming the line; so is a missing ``required`` column."""
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        columns = list(reader.fieldnames or [])
    except csv.Error as exc:
        raise UsageError(f"{source}:1: bad CSV header ({exc})") from exc
    require_columns(columns, required, Path(source))

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        start = reader.line_num
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise UsageError(
                    f"{source}:{start + 1}: bad CSV ({exc}); an unterminated quote?"
                ) from exc
            yield start + 1, row  # where the record starts (a quoted field may span lines)
            start = reader.line_num

    return columns, rows()


def read_csv(path: Path, required: tuple[str, ...] = ()) -> Iterator[tuple[int, dict[str, str]]]:
    """``(line number, row)`` for every data row of a CSV file with a header; a missing
    ``required`` column or malformed CSV is a UsageError."""
    _, rows = csv_rows(decode_text(read_bytes(path), path), path, required)
    yield from rows


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


def product_id(value: Any, source: str | Path, lineno: int) -> str | None:
    """A listing's id as text (``None`` or blank: no id). An id holding whitespace or a
    control character is a UsageError naming the line: ``matches.csv`` separates ids by
    spaces, and a carriage return there splits a row in two."""
    text = optional_text(value)
    if text is None:
        return None
    bad = next((ch for ch in text if ch.isspace() or unicodedata.category(ch) in BAD_ID), None)
    if bad is not None:
        what = "whitespace" if bad.isspace() else "a control character"
        raise UsageError(
            f"{source}:{lineno}: id {text[:40]!r} holds {what} (U+{ord(bad):04X}); ids may "
            "not: matches.csv lists them space-separated"
        )
    return text
