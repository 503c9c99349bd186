"""An append-only log of the items an index run could not read, written as they happen.

The index report is written when a run ends; a run killed before that would forget the
unreadable images of the batches it stored. This log is appended (and flushed to disk)
before each batch is stored, so the resumed run can report them again. A line torn by
a kill is skipped when the log is read.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)


class FailureLog:
    """``{"id": ..., "error": ...}`` lines in one file; the last line for an id wins."""

    def __init__(self, path: Path, *, fresh: bool = False) -> None:
        self.path = Path(path)
        self._torn = False
        if fresh:
            self.path.unlink(missing_ok=True)
        self.known = self._read()

    def _read(self) -> dict[str, str]:
        known: dict[str, str] = {}
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return known
        self._torn = bool(data) and not data.endswith(b"\n")
        for line in data.splitlines():
            try:
                row = json.loads(line)
                known[str(row["id"])] = str(row["error"])
            except (ValueError, KeyError, TypeError):
                continue  # a line torn by a kill
        return known

    def failures_of(self, ids: Iterable[str]) -> dict[str, str]:
        """Logged failures of the given product ids."""
        return {i: self.known[i] for i in ids if i in self.known}

    def append(self, failures: dict[str, str]) -> None:
        """Add failures and flush them to disk before the caller stores the batch."""
        if not failures:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = "".join(json.dumps({"id": k, "error": v}) + "\n" for k, v in failures.items())
        if self._torn:  # end the line a kill cut short before adding whole ones
            lines, self._torn = "\n" + lines, False
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())
        self.known.update(failures)
