"""Disk space for the embedded index: checked before and during indexing.

Qdrant Edge maps its segment and WAL files into memory; when the disk fills under a
mapping the process dies of SIGBUS ("Bus error", exit 135) with no message. So the
edge back-end refuses to start (or to go on) without room, and reports ``ENOSPC``
raised by a write as one line.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from retrieval.errors import SearchError

# A fresh shard maps about 100 MB of (sparse) WAL and storage files; they fill as points come.
SHARD_BYTES = 128 * 2**20
# Free space always kept while writing: below it, indexing stops before the mapping faults.
MARGIN_BYTES = 64 * 2**20
POINT_OVERHEAD = 4096  # payload, id tracker, sparse vectors and index links per point


class DiskFullError(SearchError):
    """Not enough free disk for the index; free some space and re-run (it resumes)."""


def _existing(path: str | Path) -> Path:
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def free_bytes(path: str | Path) -> int:
    """Free bytes on the file system holding ``path`` (or its nearest existing parent)."""
    return shutil.disk_usage(_existing(path)).free


def require_writable(path: str | Path, what: str) -> None:
    """A SearchError unless ``path`` (or the parent it would be made in) is writable."""
    folder = _existing(path)
    if not os.access(folder, os.W_OK):
        raise SearchError(
            f"cannot create {what} under {path}: {folder} is not writable "
            "(read-only?); pick another --data-dir"
        )


def estimate_bytes(dense_sizes: Sequence[int], points: int) -> int:
    """A generous estimate of the disk a collection of ``points`` needs: float32 vectors
    twice (storage and the HNSW build's copy) plus a fixed overhead per point."""
    return points * (8 * sum(dense_sizes) + POINT_OVERHEAD)


def require_space(path: str | Path, needed: int, what: str) -> None:
    """Raise DiskFullError unless ``needed`` bytes plus the margin are free at ``path``."""
    free = free_bytes(path)
    if free < needed + MARGIN_BYTES:
        raise DiskFullError(
            f"not enough disk space for {what} under {path}: {_mb(free)} free, about "
            f"{_mb(needed + MARGIN_BYTES)} needed; free some space (or pass --data-dir) "
            "and re-run: indexing resumes where it stopped"
        )


def is_disk_full(exc: BaseException) -> bool:
    """Whether an exception (an OSError, or the edge binding's plain Exception) is ENOSPC."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    return "No space left on device" in text or "os error 28" in text


def disk_full_error(path: str | Path) -> DiskFullError:
    """The one-line error for a write that hit a full disk."""
    return DiskFullError(
        f"disk full under {path} ({os.strerror(errno.ENOSPC)}): free some space and re-run; "
        "indexing resumes where it stopped"
    )


def _mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MB"
