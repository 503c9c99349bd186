"""A reviewer's labels in the tuning of a matcher (``search eval --labels FILE``).

The labels (``search.match.labels``) split in two before anything is fitted: those
touching a listing of the scored split (test) are held out, never fitted nor tuned on,
and only scored; the others correct the split's own group labels where they disagree
and add pairs the groups never said anything about:

- the pair model's training rows: a labelled candidate edge takes the reviewer's
  verdict as its target, and is fitted even when its listings are in no train fold
  (``search.match.tuning.pair``);
- the threshold tuning: a tuning query's targets gain its labelled matches and lose
  its labelled non-matches (``EdgeSet.amend``).

Reported apart from the split's own F1 as ``labels/*``: how many were read, held out,
fitted, tuned on, not candidates at all, and how often the chosen rule agrees with them
(``labels/agreement`` in-sample, ``labels/held_out_agreement`` on the held-out ones).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from retrieval.types import Product
from search.match.edges import Edges
from search.match.edgeset import EdgeSet
from search.match.labels import Label, label_pairs
from search.match.rules import Sets

Pair = tuple[str, str]


@dataclass
class TuningLabels:
    """Verdicts (1 match, 0 not) by sorted id pair: ``fit`` may be learnt from,
    ``held_out`` touch the scored split."""

    fit: dict[Pair, int]
    held_out: dict[Pair, int]
    skipped: int = 0
    counts: dict[str, float] = field(default_factory=dict)

    @classmethod
    def split(
        cls, labels: Mapping[Pair, Label], products: Sequence[Product], scored: str
    ) -> TuningLabels:
        """The labels apart: those touching a listing of split ``scored`` held out."""
        pairs, y = label_pairs(labels)
        scored_ids = {p.id for p in products if p.fields.get("split") == scored}
        fit, held = {}, {}
        for pair, verdict in zip(pairs, y.tolist()):
            (held if scored_ids.intersection(pair) else fit)[pair] = int(verdict)
        return cls(fit, held, len(labels) - len(pairs))

    def edge_targets(self, es: EdgeSet, edges: Edges) -> tuple[np.ndarray, np.ndarray]:
        """Which ``edges`` of ``es`` the fit labels name (either direction), and their verdict."""
        ids = [p.id for p in es.products]
        mask = np.zeros(len(edges), dtype=bool)
        y = np.zeros(len(edges))
        if not self.fit:
            return mask, y
        for e, (i, j) in enumerate(zip(edges.src.tolist(), edges.dst.tolist())):
            a, b = ids[i], ids[j]
            v = self.fit.get((a, b) if a < b else (b, a))
            if v is not None:
                mask[e], y[e] = True, v
        return mask, y

    def amend(self, es: EdgeSet) -> EdgeSet:
        """``es`` whose tuning targets follow the fit labels (a copy; ``es`` unchanged)."""
        row = {p.id: i for i, p in enumerate(es.products)}
        amend = {
            (row[a], row[b]): bool(v) for (a, b), v in self.fit.items() if a in row and b in row
        }
        queries = set(es.queries.tolist())
        used = sum(1 for i, j in amend if i in queries or j in queries)
        self.counts["labels/tuning"] = self.counts.get("labels/tuning", 0) + used
        return replace(es, amend=amend)

    def agreement(self, es: EdgeSet, sets: Sets, which: str) -> tuple[int, int]:
        """(decided, agreeing): labels of ``which`` ("fit" or "held_out") with an end
        among ``es``'s queries and both ends among its rows, against the decided sets."""
        labels = self.fit if which == "fit" else self.held_out
        row = {p.id: i for i, p in enumerate(es.products)}
        queries = set(es.queries.tolist())
        decided = agree = 0
        for (a, b), v in labels.items():
            i, j = row.get(a), row.get(b)
            if i is None or j is None or not ({i, j} & queries):
                continue
            matched = j in sets.get(i, ()) or i in sets.get(j, ())
            decided += 1
            agree += int(matched == bool(v))
        return decided, agree

    def score(self, held: tuple[EdgeSet, Sets], fit: tuple[EdgeSet, Sets]) -> None:
        """The chosen rule's agreement (its decided sets) with both kinds of labels,
        into ``counts``."""
        for name, (es, sets), which in (("held_out_", held, "held_out"), ("", fit, "fit")):
            decided, agree = self.agreement(es, sets, which)
            self.counts[f"labels/{name}decided"] = decided
            if decided:
                self.counts[f"labels/{name}agreement"] = round(agree / decided, 6)

    def metrics(self) -> dict[str, float]:
        """``labels/*``: counts and agreements, apart from the split's own figures."""
        verdicts = [*self.fit.values(), *self.held_out.values()]
        out = {
            "labels/n": float(len(verdicts)),
            "labels/match": float(sum(verdicts)),
            "labels/no_match": float(len(verdicts) - sum(verdicts)),
            "labels/skipped": float(self.skipped),
            "labels/held_out": float(len(self.held_out)),
        }
        out.update({k: float(v) for k, v in self.counts.items()})
        return out


def disagreements(labels: TuningLabels, products: Sequence[Product]) -> int:
    """Fit labels that contradict the split's own groups (both ends grouped)."""
    group = {p.id: p.group for p in products}
    out = 0
    for (a, b), v in labels.fit.items():
        ga, gb = group.get(a), group.get(b)
        if ga is not None and gb is not None and (ga == gb) != bool(v):
            out += 1
    return out
