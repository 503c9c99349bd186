"""What the studio's routes call: one match run (or cold-start review) folder, its groups,
the explain view of a pair, the review queue and the labels.

The folder is read once and read again when its ``run.json`` or ``edges.jsonl`` change
(a cold-start review rewrites them after each batch: the studio's own refits run in the
background, ``search.web.studio_refit``, and read the folder again when done). Labels go
through ``search.match.labels`` (one locked append per verdict, so two tabs never lose
each other's labels); a verdict that changes the pair's earlier one is written
``revises``.
Images are served only when a listing of the run names them *and* they lie inside the
image roots of the catalogue the run was made from (``search.web.images``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from retrieval.errors import SearchError, UsageError
from search.match.labels import VERDICTS, Label, read_labels
from search.web.images import ImageRefused, ImageRoots, image_response
from search.web.studio_data import Edge, RunData, RunRefused, load_run, read_meta
from search.web.studio_groups import Groups
from search.web.studio_pair import explain
from search.web.studio_refit import Refits

log = logging.getLogger(__name__)
SOURCE = "studio"
MAX_QUEUE = 50


def open_queue(folder: Path, run: RunData) -> Any:
    """The review queue of a run folder (``.next(n)``, ``.record(label)``,
    ``.progress()``): ``search.match.review``'s ``RunQueue`` for a match run, ``ColdStart``
    for a review folder; imported here, so the plain viewer never loads their stack."""
    from search.match import review

    if run.meta.get("kind") == "review":
        return review.ColdStart.open(folder)
    edges = ((e.a, e.b, e.score, e.matched) for e in run.edges)  # read once, by the studio
    return review.RunQueue.from_edges(folder, run.meta, edges, run.listings, SOURCE)


class Studio:
    """One run folder as the studio shows it."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder).resolve()
        self.lock = threading.Lock()  # one loader, one label writer at a time
        self._stamp: tuple | None = None
        self.run: RunData | None = None
        self.groups: Groups | None = None
        self.edges: dict[tuple[str, str], Edge] = {}
        self.images: set[str] = set()
        self.queue: Any = None
        self.load_seconds = 0.0
        self.refits = Refits(self)  # a cold start's refits, off the label requests

    def _files_stamp(self) -> tuple:
        stamps = []
        for name in ("run.json", "listings.jsonl", "edges.jsonl"):
            try:
                st = (self.folder / name).stat()
                stamps.append((st.st_mtime_ns, st.st_size))
            except OSError:
                stamps.append(None)
        return tuple(stamps)

    def load(self) -> Studio:
        """Read the folder if it changed since the last read; ``RunRefused`` if it is not a
        run this version knows (checked on every call, so a folder replaced under a
        running server answers 4xx, not stale pages)."""
        with self.lock:
            read_meta(self.folder)
            stamp = self._files_stamp()
            if self.run is not None and (stamp == self._stamp or self.refits.running):
                return self  # unchanged, or our own refit rewrites it (and reads it after)
            self._install(*self._read())
            assert self.run is not None
            self.queue = open_queue(self.folder, self.run)
            self._stamp = stamp
            return self

    def _read(self) -> tuple[RunData, Groups, set[str], float]:
        """The folder's run, its groups, the images it may serve, the seconds it took."""
        start = time.perf_counter()
        try:
            run = load_run(self.folder)
        except OSError as exc:  # unreadable files: one line, not a traceback
            raise RunRefused(f"cannot read {self.folder}: {exc.strerror or exc}") from exc
        roots = ImageRoots()
        roots.add_dataset(run.meta.get("source"))
        images = {
            item["image"]
            for item in run.listings.values()
            if item["image"] and roots.contains(item["image"])
        }
        return run, Groups(run), images, time.perf_counter() - start

    def _install(self, run: RunData, groups: Groups, images: set[str], seconds: float) -> None:
        self.run, self.groups, self.images = run, groups, images
        self.edges = {(e.a, e.b): e for e in run.edges}
        self.load_seconds = seconds
        log.info("studio: %s read in %.2fs", self.folder, seconds)

    def reread(self) -> None:
        """The folder read again after our own refit rewrote it, off the lock; the queue
        (already holding that fit) kept."""
        stamp = self._files_stamp()
        read = self._read()
        with self.lock:
            self._install(*read)
            self._stamp = stamp

    # -- pages -----------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        self.load()
        assert self.run is not None and self.groups is not None
        meta = self.run.meta
        keys = ("kind", "dataset", "collection", "matcher", "primary", "threshold", "labelled")
        return {
            "folder": self.folder.name,
            "listings": len(self.run.listings),
            "load_seconds": round(self.load_seconds, 3),
            **{k: meta.get(k) for k in keys},
            "rule": meta.get("rule"),
            **self.groups.summary(),
            "progress": self.progress(),
        }

    def group_page(self, page: int, q: str, errors: bool) -> dict[str, Any]:
        return self.load().groups.page(page, q, errors)  # type: ignore[union-attr]

    def group(self, g: int) -> dict[str, Any]:
        return self.load().groups.group(g)  # type: ignore[union-attr]

    def histogram(self) -> dict[str, Any]:
        return self.load().groups.histogram()  # type: ignore[union-attr]

    def _edge(self, a: str, b: str) -> Edge:
        self.load()
        assert self.run is not None
        for pid in (a, b):
            if pid not in self.run.listings:
                raise UsageError(f"no listing {pid!r} in this run")
        edge = self.edges.get((min(a, b), max(a, b)))
        if edge is None:
            raise SearchError(f"{a!r} and {b!r} are not a candidate pair of this run")
        return edge

    def pair(self, a: str, b: str) -> dict[str, Any]:
        edge = self._edge(a, b)
        assert self.run is not None and self.groups is not None
        out = explain(edge, self.run.meta)
        out["listings"] = [self.groups.card(edge.a), self.groups.card(edge.b)]
        if self.groups.labelled:
            out["same_true_group"] = self.groups.true_group(a) == self.groups.true_group(b)
        label = self.labels().get((edge.a, edge.b))
        out["label"] = asdict(label) if label else None
        return out

    # -- queue and labels ------------------------------------------------------------------
    def labels(self) -> dict[tuple[str, str], Label]:
        self.load()
        assert self.run is not None
        return read_labels(self.run.labels_path, set(self.run.listings))

    def label_list(self) -> dict[str, Any]:
        labels = sorted(self.labels().values(), key=lambda lab: (lab.at, lab.pair))
        return {"labels": [asdict(lab) for lab in labels], "progress": self.progress()}

    def progress(self) -> dict[str, Any]:
        self.load()
        with self.lock:
            return {**self.queue.progress(), "refitting": self.refits.running}

    def refit_state(self) -> dict[str, Any]:
        """Whether a refit runs, how many finished, the last one's error."""
        with self.lock:
            return self.refits.state()

    def next_pairs(self, n: int) -> dict[str, Any]:
        if not 1 <= n <= MAX_QUEUE:
            raise UsageError(f"n must be 1 to {MAX_QUEUE}")
        self.load()
        assert self.groups is not None
        with self.lock:
            items = self.queue.next(n)
        rows = []
        for item in items:
            row = {"a": item.a, "b": item.b, "score": item.score, "threshold": item.threshold}
            row["reason"] = item.reason
            row["listings"] = [self.groups.card(item.a), self.groups.card(item.b)]
            rows.append(row)
        return {"items": rows, "progress": self.progress()}

    def label(self, body: dict[str, Any]) -> dict[str, Any]:
        """Save one verdict from the page: ``{"a", "b", "verdict"}``."""
        a, b, verdict = body.get("a"), body.get("b"), body.get("verdict")
        if not isinstance(a, str) or not isinstance(b, str):
            raise UsageError("a label needs the ids 'a' and 'b'")
        if verdict not in VERDICTS:
            raise UsageError(f"verdict must be one of {', '.join(VERDICTS)}")
        unknown = set(body) - {"a", "b", "verdict"}
        if unknown:
            raise UsageError(f"unknown field {sorted(unknown)[0]!r} in a label")
        self._edge(a, b)
        assert self.run is not None
        with self.lock:
            earlier = read_labels(self.run.labels_path, set(self.run.listings)).get(
                (min(a, b), max(a, b))
            )
            revises = earlier is not None and earlier.verdict != verdict
            label = Label.now(a, b, verdict, SOURCE, revises)
            if hasattr(self.queue, "refit_due"):  # a cold start: refit in the background
                self.queue.record(label, refit=False)  # in labels.jsonl before any refit
                self.refits.start_if_due()
            else:
                self.queue.record(label)
        return {"label": asdict(label), "progress": self.progress()}

    def image(self, ref: str) -> tuple[bytes, str]:
        """An image a listing of the run names, inside the catalogue's image roots."""
        self.load()
        if ref not in self.images:
            raise ImageRefused("image not listed by this run")
        return image_response(ref)
