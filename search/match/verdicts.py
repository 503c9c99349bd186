"""A reviewer's verdicts in a ``search match`` run (``search match --labels FILE``): the
labelled pairs mapped to rows, kept whatever the matcher says (``rules.decide``: a match
forced in, a non-match forced out, before group consistency, which never joins a pair
kept apart), and each labelled matched pair marked in ``matches.jsonl``.
"""

from __future__ import annotations

from collections.abc import Mapping

from retrieval.data.base import Dataset
from retrieval.errors import UsageError
from search.match.edgeset import EdgeSet
from search.match.labels import Label
from search.match.rules import Sets


def row_verdicts(
    es: EdgeSet, dataset: Dataset, labels: Mapping[tuple[str, str], Label]
) -> dict[tuple[int, int], bool]:
    """A reviewer's match / no_match verdicts on pairs of the edge set's rows (skips dropped)."""
    if not dataset.self_match:
        raise UsageError(
            "--labels keeps verdicts on a catalogue matched against itself; "
            f"{dataset.name} is a query/gallery set"
        )
    row = {p.id: i for i, p in enumerate(es.products)}
    return {
        (row[a], row[b]): lab.verdict == "match"
        for (a, b), lab in labels.items()
        if lab.verdict != "skip" and a in row and b in row
    }


def mark_verdicts(
    why: dict[tuple[int, int], dict],
    sets: Sets,
    plain: Sets,
    verdicts: Mapping[tuple[int, int], bool],
) -> list[str]:
    """Each labelled matched pair's ``label`` in ``why`` (its ``rule`` is ``label``
    where the matcher alone would not have matched it); the note of what the verdicts
    changed."""
    forced_in = forced_out = 0
    for (a, b), same in verdicts.items():
        before = b in plain.get(a, ()) or a in plain.get(b, ())
        forced_in += int(same and not before)
        forced_out += int(before and not same)
        for i, j in ((a, b), (b, a)):
            if (i, j) in why:
                why[(i, j)]["label"] = "match" if same else "no_match"
                if not before:
                    why[(i, j)]["rule"] = "label"
    return [
        f"labels: {len(verdicts)} reviewed verdicts kept; {forced_in} pair(s) matched and "
        f"{forced_out} kept apart against the matcher's own decision"
    ]
