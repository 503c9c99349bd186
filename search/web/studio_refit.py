"""The cold-start refit of the studio, off the label request.

A cold-start review (``search.match.cold_start.ColdStart``) refits its pair model after
every ``batch`` verdicts. In the studio a label request only records its verdict (one
locked append to ``labels.jsonl``, so it is on disk before any refit starts) and, when a
refit is due, starts this worker, then answers: the click never waits for the fit.

One refit at a time, on one background thread: it takes the labels recorded so far,
fits on them off the studio's lock (labels that arrive meanwhile are recorded at once
and counted for the next refit, which follows straight away if a batch of them came),
makes the fit the queue's under the lock, rewrites the folder (each file whole or not at
all) and reads it again. A server stopped mid-refit loses no label: the folder keeps the
previous fit, and reopening it fits on every label in ``labels.jsonl``. The page learns
of a refit from ``progress.refitting`` and asks ``GET /api/refit`` until it is done,
then fetches its queue again.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger(__name__)


class Refits:
    """The studio's refit worker: whether one runs, how many finished, the last error."""

    def __init__(self, studio: Any) -> None:
        self.studio = studio  # search.web.studio.Studio: its lock, queue and reread()
        self.running = False
        self.done = 0
        self.error: str | None = None
        self._thread: threading.Thread | None = None

    def state(self) -> dict[str, Any]:
        return {"running": self.running, "done": self.done, "error": self.error}

    def start_if_due(self) -> bool:
        """Start the worker if the queue has a refit due and none runs (call it under the
        studio's lock, after recording a label); whether one runs now."""
        due = getattr(self.studio.queue, "refit_due", None)
        if self.running or due is None or not due():
            return self.running
        self.running, self.error = True, None
        self._thread = threading.Thread(target=self._run, name="studio-refit", daemon=True)
        self._thread.start()
        return True

    def join(self, timeout: float | None = None) -> None:
        """Wait for the worker (tests, shutdown)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        studio = self.studio
        try:
            while True:
                with studio.lock:
                    queue = studio.queue
                    if not queue.refit_due():
                        return
                    labels = queue.take_labels()
                fit = queue.fit(labels)  # the long part: labels keep coming meanwhile
                with studio.lock:
                    if fit is not None:
                        queue.apply(fit)
                queue.save()
                studio.reread()
                with studio.lock:
                    self.done += 1
        except Exception as exc:  # shown on the page; the labels stay on disk
            log.exception("studio: the cold-start refit failed")
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            self.error = f"the refit failed: {first}"
        finally:
            with studio.lock:
                self.running = False
