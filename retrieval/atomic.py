"""Files written whole or not at all: a temporary name in the same folder, then a rename.

Every artifact the project writes (metrics, runs, reports, matches, settings, meta.json)
goes through here, so a kill or a full disk leaves either the old file or the new one,
never half of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from retrieval.errors import SearchError


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on a clean exit fsync it and rename it over ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was. The
    file gets the mode a plain ``open`` would give it (``0o666`` less the umask), or the
    mode of the file it replaces (``mkstemp``'s own 0600 never survives the rename).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes only ('w' or 'wb'), not {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, file_mode(target))
        kwargs = {} if "b" in mode else {"encoding": encoding, "newline": ""}
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (``os.umask``
    can only be read by setting it, which races with other threads creating files)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode(target: Path) -> int:
    """The permission bits a file written to ``target`` gets: those of the file it
    replaces, else ``0o666`` less the umask."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        return 0o666 & ~current_umask()


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; return the path."""
    with atomic_open(path, "w") as handle:
        handle.write(text)
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def write_json(
    path: str | Path, obj: Any, *, indent: int | None = 2, sort_keys: bool = False
) -> Path:
    """Write ``obj`` as JSON (plus a final newline) to ``path`` atomically; return the path."""
    return write_text(path, json.dumps(obj, indent=indent, sort_keys=sort_keys) + "\n")


class DamagedFile(SearchError):
    """An artifact that exists but cannot be read back (truncated, not JSON, wrong shape)."""


def read_json(path: str | Path, rebuild: str, *, kind: type = dict) -> Any:
    """Read a JSON artifact; a damaged one is one line naming the file and ``rebuild``
    (how to make it again), e.g. ``"delete it and re-run the same command"``."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise DamagedFile(f"damaged file {p} (not UTF-8 text); {rebuild}") from exc
    except json.JSONDecodeError as exc:
        raise DamagedFile(
            f"damaged file {p} (bad JSON: {exc.msg}, line {exc.lineno}); {rebuild}"
        ) from exc
    except IsADirectoryError as exc:
        raise DamagedFile(f"{p} is a folder, not a file; {rebuild}") from exc
    if not isinstance(data, kind):
        raise DamagedFile(f"damaged file {p} (expected a JSON {kind.__name__}); {rebuild}")
    return data


SHA256 = re.compile(r"[0-9a-f]{64}")


def write_checked(path: str | Path, data: str | bytes) -> dict[str, Any]:
    """Write ``data`` (text as UTF-8) to ``path`` atomically; return the record that
    ``read_checked`` verifies it by: ``{"sha256": hex, "size": bytes}``. Model files that
    native code parses (LightGBM's) are written this way and their record kept beside them."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    write_bytes(path, raw)
    return {"sha256": hashlib.sha256(raw).hexdigest(), "size": len(raw)}


def read_checked(path: str | Path, record: Any, rebuild: str) -> bytes:
    """The bytes of ``path`` if they match ``record`` (from ``write_checked``), read once
    so what is checked is what the caller parses. A missing record, another size (checked
    from ``stat`` before a byte is read) or another sha256 is one line naming the file
    and ``rebuild`` (the command that writes it again)."""
    p = Path(path)
    if not (
        isinstance(record, dict)
        and isinstance(record.get("sha256"), str)
        and SHA256.fullmatch(record["sha256"])
        and type(record.get("size")) is int
    ):
        raise DamagedFile(
            f"{p} has no recorded sha256 and size (an older version wrote it); {rebuild}"
        )
    try:
        info = p.stat()
        if not stat.S_ISREG(info.st_mode):
            raise DamagedFile(f"{p} is not a regular file; {rebuild}")
        size = info.st_size
        if size != record["size"]:
            raise DamagedFile(
                f"damaged file {p} ({size} bytes, {record['size']} recorded when it was written); {rebuild}"
            )
        data = p.read_bytes()
    except FileNotFoundError as exc:
        raise DamagedFile(f"{p} is missing; {rebuild}") from exc
    if len(data) != record["size"] or hashlib.sha256(data).hexdigest() != record["sha256"]:
        raise DamagedFile(
            f"damaged file {p} (its sha256 differs from the one recorded when it was written); {rebuild}"
        )
    return data
