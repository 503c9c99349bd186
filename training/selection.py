"""Model choice on the valid split, shared by the rerankers' trainers.

After each epoch the trainer's model ranks the valid lists; the best epoch by hit@1
(then MRR@10) is saved (``save(out)``), ``patience`` epochs without gain stop the run,
and every epoch's metrics go to ``out/best.json`` and to a short Markdown table,
``out/valid_epochs.md`` (written whole or not at all), under a first row for stage 1's
own order of the same lists (the bar; ``verdict`` says when the kept epoch does not pass
it). After training, ``choose_stage1_weight`` picks how far the kept model's scores lean
on stage 1's rank (``training.ranking.choose_stage1_weight``). Without valid lists there
is nothing to choose from: the caller keeps the last epoch, and ``EpochChoice`` says so.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from retrieval.atomic import write_json, write_text
from training.ranking import (
    ValidList,
    choose_stage1_weight,
    epoch_table,
    rank_metrics,
    stage1_metrics,
    weight_table,
)

log = logging.getLogger(__name__)

TABLE = "valid_epochs.md"
BEST = "best.json"


class EpochChoice:
    """Keeps the best epoch on valid; ``score(lists)`` ranks, ``save(out)`` keeps it."""

    def __init__(
        self,
        valid: Sequence[ValidList],
        out: Path,
        score: Callable[[Sequence[ValidList]], list[list[float]]],
        save: Callable[[Path], None],
        *,
        patience: int = 0,
        resume: bool = False,
    ) -> None:
        self.valid, self.out, self.score, self.save = list(valid), Path(out), score, save
        self.patience = patience
        best = self.out / BEST
        self.state: dict[str, Any] = (
            json.loads(best.read_text()) if resume and best.is_file() else {}
        )
        self.history: list[dict[str, float]] = list(self.state.get("history", []))
        self.stage1 = stage1_metrics(self.valid) if self.valid else {}
        self.kept_scores: list[list[float]] | None = None  # the kept epoch's, this process
        if not self.valid:
            log.warning("no valid queries: no epoch can be chosen; keeping the last epoch")

    @property
    def chose(self) -> bool:
        """Whether an epoch was saved as the best (else the caller saves the last)."""
        return bool(self.valid) and "hit@1" in self.state

    def epoch_end(self, epoch: float, step: int) -> bool:
        """Rank the valid lists, keep the model if it is the best so far; True when
        ``patience`` epochs passed without gain (the run should stop)."""
        if not self.valid:
            return False
        scores = self.score(self.valid)
        metrics = rank_metrics(self.valid, scores)
        metrics.update(epoch=round(epoch, 3), step=step)
        self.history.append(metrics)
        log.info("valid after epoch %s: hit@1 %.3f, MRR@10 %.3f", epoch, *self._key(metrics))
        stop = False
        if self._key(metrics) > self._key(self.state, -1.0):
            for stale_choice in ("stage1_weight", "stage1_weights", "with_stage1"):
                self.state.pop(stale_choice, None)  # chosen for an earlier kept epoch
            self.state.update(metrics, stale=0)
            self.kept_scores = scores
            self.save(self.out)
        else:
            self.state["stale"] = self.state.get("stale", 0) + 1
            stop = bool(self.patience) and self.state["stale"] >= self.patience
            if stop:
                log.info("no gain on valid for %d epochs: stopping", self.state["stale"])
        self.state["history"] = self.history
        self.state["stage1"] = self.stage1
        write_json(self.out / BEST, self.state)
        write_text(self.out / TABLE, self.table())
        return stop

    def table(self) -> str:
        """The per-epoch Markdown table, the kept epoch marked; then, once chosen, the
        table of stage-1 weights."""
        table = epoch_table(self.history, self.state.get("epoch"), self.stage1)
        if self.state.get("stage1_weights"):
            kept = self.state.get("stage1_weight")
            table += "\n" + weight_table(self.state["stage1_weights"], kept)
        return table

    def choose_stage1_weight(self, rescore: Callable[[], list[list[float]]]) -> float:
        """The weight of stage 1's rank added to the kept epoch's scores that ranks valid
        best (``training.ranking.choose_stage1_weight``; 0 when no epoch was chosen).
        ``rescore()`` scores the valid lists with the kept model when this process did not
        (a resumed run whose best epoch came before it). Recorded in ``best.json`` and the
        table (``with_stage1``: the kept epoch's metrics with that weight)."""
        if not self.chose:
            return 0.0
        scores = self.kept_scores if self.kept_scores is not None else rescore()
        weight, rows = choose_stage1_weight(self.valid, scores)
        kept = next(r for r in rows if r["stage1_weight"] == weight)
        self.state.update(stage1_weight=weight, stage1_weights=rows)
        self.state["with_stage1"] = {k: kept[k] for k in ("hit@1", "mrr@10")}
        write_json(self.out / BEST, self.state)
        write_text(self.out / TABLE, self.table())
        if weight:
            log.info(
                "valid ranks best with stage 1's rank at weight %g: hit@1 %.3f (model alone %.3f)",
                weight,
                kept["hit@1"],
                self.state["hit@1"],
            )
        return weight

    def best(self) -> dict[str, Any]:
        """The kept epoch's metrics (empty when none was chosen)."""
        skip = ("stale", "history", "stage1", "stage1_weights")
        return {k: v for k, v in self.state.items() if k not in skip}

    def verdict(self) -> str:
        """One line when the kept model (with its stage-1 weight, once chosen) ranks valid
        no better than stage 1 did: the reranker would not pay off there; "" otherwise
        or without a choice."""
        if not self.chose:
            return ""
        kept = self.state.get("with_stage1", self.state)
        if self._key(kept) > self._key(self.stage1):
            return ""
        return (
            f"the trained reranker ranks valid no better than stage 1 (hit@1 "
            f"{kept['hit@1']:.3f} vs {self.stage1['hit@1']:.3f}, MRR@10 "
            f"{kept['mrr@10']:.3f} vs {self.stage1['mrr@10']:.3f}): check its data "
            "and recipe before using it"
        )

    @staticmethod
    def _key(metrics: dict[str, Any], default: float = 0.0) -> tuple[float, float]:
        return (metrics.get("hit@1", default), metrics.get("mrr@10", default))
