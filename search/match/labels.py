"""A reviewer's labels of listing pairs: one JSON line per verdict, appended as made.

A line is ``{"a": id, "b": id, "verdict": "match" | "no_match" | "skip", "at": iso8601,
"source": "studio" | "review" | "bench" | ..., "revises": bool}``. A pair is unordered.
A verdict that changes an earlier verdict of the same pair carries ``"revises": true``;
two different verdicts of one pair without it are a contradiction, refused with the file
and line that made it. The latest verdict of a pair wins.

Appends are the one write here that is not a whole-file replace: each label is one
``write`` of one encoded line to a file opened ``O_APPEND`` under an exclusive
``flock``, then fsynced, so two browser tabs or processes never interleave or lose a
label.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from retrieval.errors import SearchError

VERDICTS = ("match", "no_match", "skip")
FIELDS = ("a", "b", "verdict", "at", "source", "revises")


@dataclass(frozen=True)
class Label:
    """One verdict on the unordered pair (``a``, ``b``)."""

    a: str
    b: str
    verdict: str
    at: str
    source: str
    revises: bool = False

    @classmethod
    def now(cls, a: str, b: str, verdict: str, source: str, revises: bool = False) -> Label:
        """A label stamped with the current UTC time."""
        at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        return cls(str(a), str(b), verdict, at, source, bool(revises))

    @property
    def pair(self) -> tuple[str, str]:
        """The pair, sorted: the key labels are kept under."""
        return (self.a, self.b) if self.a < self.b else (self.b, self.a)


def _problem(fields: Mapping[str, object]) -> str | None:
    """What is wrong with one label's fields, or None."""
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        return f"unknown key(s) {', '.join(map(repr, unknown))}; a label has {', '.join(FIELDS)}"
    for key in ("a", "b", "at", "source"):
        value = fields.get(key)
        if not isinstance(value, str) or not value:
            return f"{key!r} must be a non-empty string, not {value!r}"
    if fields["verdict"] not in VERDICTS:
        return f"verdict {fields.get('verdict')!r} is not one of {', '.join(VERDICTS)}"
    if not isinstance(fields.get("revises", False), bool):
        return f"'revises' must be true or false, not {fields['revises']!r}"
    if fields["a"] == fields["b"]:
        return f"a listing paired with itself ({fields['a']!r})"
    try:
        datetime.fromisoformat(str(fields["at"]).replace("Z", "+00:00"))
    except ValueError:
        return f"'at' {fields['at']!r} is not an ISO 8601 time"
    return None


def append_label(path: Path, label: Label) -> None:
    """Append ``label`` to ``path`` as one whole line (created if missing)."""
    problem = _problem(asdict(label))
    if problem:
        raise SearchError(f"refusing a label for {path}: {problem}")
    line = (json.dumps(asdict(label), ensure_ascii=False) + "\n").encode("utf-8")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line  # a torn last line stays its own (malformed) line
        written = os.write(fd, line)
        while written < len(line):  # a short write on a full pipe or a signal
            written += os.write(fd, line[written:])
        os.fsync(fd)
    except OSError as exc:
        raise SearchError(f"cannot append a label to {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)  # closing drops the lock


def _parse(text: str, where: str) -> Label:
    try:
        fields = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SearchError(f"{where}: not a JSON line ({exc.msg})") from None
    if not isinstance(fields, dict):
        raise SearchError(f"{where}: a label is a JSON object, not {type(fields).__name__}")
    missing = [key for key in FIELDS[:5] if key not in fields]
    problem = f"missing {', '.join(map(repr, missing))}" if missing else _problem(fields)
    if problem:
        raise SearchError(f"{where}: {problem}")
    return Label(**{**fields, "revises": fields.get("revises", False)})


def read_labels(path: Path, known_ids: set[str] | None = None) -> dict[tuple[str, str], Label]:
    """Every pair's latest label, keyed by the sorted pair; a missing file holds none.

    A malformed line, an id not in ``known_ids`` (when given), a self-pair, or a verdict
    that differs from the pair's earlier one without ``"revises": true`` raises
    ``SearchError`` naming the file and line.
    """
    path = Path(path)
    if not path.exists():
        return {}
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SearchError(f"cannot read labels {path}: {exc.strerror or exc}") from exc
    labels: dict[tuple[str, str], Label] = {}
    lines: dict[tuple[str, str], int] = {}
    for number, chunk in enumerate(raw.split(b"\n"), start=1):
        where = f"{path}:{number}"
        try:
            text = chunk.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise SearchError(f"{where}: not UTF-8 text") from None
        if not text:
            continue
        label = _parse(text, where)
        if known_ids is not None:
            unknown = [i for i in (label.a, label.b) if i not in known_ids]
            if unknown:
                raise SearchError(f"{where}: unknown listing id {unknown[0]!r}")
        earlier = labels.get(label.pair)
        if earlier is not None and earlier.verdict != label.verdict and not label.revises:
            raise SearchError(
                f"{where}: {label.verdict!r} for {label.a!r}-{label.b!r} contradicts "
                f"{earlier.verdict!r} on line {lines[label.pair]} (a change of mind "
                'carries "revises": true)'
            )
        labels[label.pair] = label
        lines[label.pair] = number
    return labels


def label_pairs(
    labels: Mapping[tuple[str, str], Label] | Iterable[Label],
) -> tuple[list[tuple[str, str]], np.ndarray]:
    """Training rows from labels: sorted pairs and y (1 = match, 0 = no match); skips dropped."""
    items = labels.values() if isinstance(labels, Mapping) else labels
    kept = sorted((lab for lab in items if lab.verdict != "skip"), key=lambda lab: lab.pair)
    pairs = [lab.pair for lab in kept]
    y = np.array([lab.verdict == "match" for lab in kept], dtype=np.int8)
    return pairs, y
