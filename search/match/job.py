"""``search match DATASET``: every listing's matches, written as a Kaggle submission.

A catalogue (Shopee folder or zip, ``test.csv`` included; a catalogue file) is matched
against itself with the vectors stored at index time, fetched by point id (never
encoded again). A query/gallery set encodes its queries and matches them to the
gallery. The decision is a saved matcher's rule (or one given by flags).

Outputs, each written whole at the end (a killed run leaves the old file, and a
re-run writes the same one): ``matches.csv`` (``posting_id,matches``, the listing
itself first, space-separated) and ``matches.jsonl`` (each listing's matches with
their scores and the rule part that admitted them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from retrieval.data.base import Dataset
from retrieval.errors import UsageError
from retrieval.index.base import CollectionInfo, VectorIndex
from retrieval.metrics import MatchScores, match_scores
from retrieval.types import ProgressFactory
from search.config import AppConfig
from search.match.edges import CSLS, MEAN
from search.match.edgeset import query_edgeset, self_edgeset, weights_for
from search.match.labels import Label, read_labels
from search.match.matcher import Matcher
from search.match.output import explain, write_matches, write_run_files
from search.match.pair_model import EXPLAIN_PAIRS, PAIR
from search.match.rules import Rule
from search.match.verdicts import mark_verdicts, row_verdicts

log = logging.getLogger(__name__)


@dataclass
class MatchResult:
    """What a match job wrote and how fast it ran."""

    out: Path
    listings: int
    pairs: int
    rule: str
    seconds: float
    notes: list[str] = field(default_factory=list)
    scores: MatchScores | None = None  # Shopee F1 over the grouped listings, if labelled
    split_scores: dict[str, MatchScores] = field(default_factory=dict)  # the same, per split
    # the split ``search eval`` scored the matcher on (held out from its tuning) and the F1
    # it reported there, from matcher.json; the same listings here give the same decisions
    eval_split: tuple[str, float | None] | None = None
    tuned_split: str | None = None  # the split its thresholds were tuned on

    @property
    def csv(self) -> Path:
        return self.out / "matches.csv"

    @property
    def jsonl(self) -> Path:
        return self.out / "matches.jsonl"

    @property
    def rate(self) -> float:
        return self.listings / self.seconds if self.seconds else 0.0

    def score_line(self) -> str | None:
        """The Shopee F1 of a labelled set in one line: per split where it has splits,
        first the one ``search eval`` scored (the figure to compare with its report; the
        whole catalogue mixes in the split tuned on and the train split)."""
        if self.scores is None:
            return None
        whole = f"over all {self.scores.n} labelled listings {self.scores.f1:.4f}"
        if not self.split_scores:
            return f"Shopee F1 {whole}"
        held, reported = self.eval_split or (None, None)
        parts = []
        for name in sorted(self.split_scores, key=lambda s: (s != held, s)):
            part = f"{name} {self.split_scores[name].f1:.4f}"
            if name == held:
                part += " (held out; search eval reported " + (
                    f"{reported:.4f})" if reported is not None else "it)"
                )
            elif name == self.tuned_split:
                part += " (tuned on)"
            parts.append(part)
        return f"Shopee F1 on {', '.join(parts)}; {whole}"


def run_match(
    index: VectorIndex,
    collection: str,
    dataset: Dataset,
    matcher: Matcher,
    rule: Rule,
    out: Path,
    progress: ProgressFactory | None = None,
    *,
    source: str | None = None,
    matcher_path: str | None = None,
    labels: Mapping[tuple[str, str], Label] | None = None,
    labels_path: str | None = None,
    explain_pairs: int = EXPLAIN_PAIRS,
) -> MatchResult:
    """Match the dataset with an open index and write the outputs: the matches, and the
    run folder the studio and ``search explain`` open (``source``: the dataset's path,
    ``matcher_path``: the matcher file, if any, both recorded in run.json); ``labels``:
    a reviewer's verdicts, kept whatever the matcher says; ``explain_pairs``: how many
    pairs nearest the threshold keep the pair model's feature contributions."""
    start = time.perf_counter()
    info = index.info(collection)
    if info is None:
        raise UsageError(f"no collection {collection!r}; run `search index` first")
    matcher.check(info, rule)
    if dataset.self_match:
        products = list(dataset.products())
        es = self_edgeset(index, collection, dataset.name, products, matcher, progress=progress)
    else:
        es = query_edgeset(index, collection, dataset, matcher, progress)
    es.search(progress)
    contrib: dict[int, np.ndarray] = {}
    if PAIR in rule.scores:
        explain_at = (rule.thresholds.get(PAIR, float("inf")), 0 if rule.inb else explain_pairs)
        contrib = es.score_pairs(matcher, explain_at, progress)
    edges = es.edges_for(rule, progress)
    verdicts = row_verdicts(es, dataset, labels) if labels else {}
    sets = es.decide(rule, progress, verdicts)
    cols = matcher.pair.columns if matcher.pair is not None else []
    why = explain(edges, rule, sets, es.n, contrib, cols)
    notes = mark_verdicts(why, sets, es.decide(rule), verdicts) if verdicts else []
    write_matches(es, sets, why, out, dataset.self_match)
    write_run_files(
        es, edges, rule, sets, why, out, source=source or dataset.name, dataset=dataset.name,
        matcher=matcher_path, contrib=contrib, cols=cols, labels=labels_path,
    )  # fmt: skip
    queried = set(es.queries.tolist())
    pairs = sum(len(v) for k, v in sets.items() if k in queried)
    result = MatchResult(out, len(es.queries), pairs, rule.name, time.perf_counter() - start)
    result.notes += notes + density_notes(matcher, es.n)
    targets = es.targets() if dataset.self_match else {}
    if targets:
        predicted = {r: sets.get(r, set()) for r in targets}
        result.scores = match_scores(predicted, targets, include_self=True)
        by_split: dict[str, dict[int, set[int]]] = {}
        for r, want in targets.items():
            split = es.products[r].fields.get("split")
            if split is not None:
                by_split.setdefault(str(split), {})[r] = want
        result.split_scores = {
            name: match_scores({r: predicted[r] for r in t}, t, include_self=True)
            for name, t in sorted(by_split.items())
        }
        held = matcher.info.get("scored_on")
        if held in result.split_scores:
            result.eval_split = (str(held), matcher.info.get("test_f1", {}).get(rule.name))
        result.tuned_split = matcher.info.get("tuned_on")
    return result


def density_notes(matcher: Matcher, listings: int) -> list[str]:
    """A note when the matcher was tuned among far fewer listings than it now matches
    among: its thresholds are then looser than this catalogue wants."""
    tuned = int(matcher.info.get("tuned_listings") or 0)
    if matcher.info.get("tuned_against") != "split" or not tuned or listings < 2 * tuned:
        return []
    return [
        f"the matcher was tuned within a split of {tuned} listings and now matches among "
        f"{listings}: its thresholds are looser than a whole catalogue wants; tune it with "
        "`search eval --match-against catalogue`"
    ]


@dataclass
class RuleFlags:
    """A rule given on the command line instead of a matcher file."""

    thresholds: dict[str, float]
    min2: float | None = None
    groups: str = "none"
    group_cap: int = 0
    inb: int = 0
    k: int = 20

    def matcher(self, info: CollectionInfo) -> Matcher:
        """A matcher over every vector of the collection, applying this one rule."""
        names = [v.name for v in info.vectors]
        known = [*names, MEAN]
        unknown = sorted(set(self.thresholds) - {*known, *(CSLS + n for n in known)})
        if unknown:
            raise UsageError(
                f"no score {unknown} to threshold; collection {info.name!r} gives "
                f"{', '.join(known)} (and each with the prefix {CSLS})"
            )
        primary = next((s for s in (MEAN, CSLS + MEAN) if s in self.thresholds), None)
        primary = primary or next(iter(self.thresholds))
        rule = Rule(
            "flags",
            dict(self.thresholds),
            primary,
            min2=self.min2,
            groups=self.groups,
            group_cap=self.group_cap,
            inb=self.inb,
        )
        encoders = list(info.meta.get("encoders") or [])
        return Matcher(encoders, names, weights_for(names), [rule], rule.name, self.k)


def match_dataset(
    cfg: AppConfig,
    dataset_path: str,
    *,
    matcher_path: str | Path | None = None,
    flags: RuleFlags | None = None,
    rule_name: str | None = None,
    fmt: str | None = None,
    collection: str | None = None,
    out: str | Path | None = None,
    labels: str | Path | None = None,
    explain_pairs: int | None = None,
    progress: ProgressFactory | None = None,
) -> MatchResult:
    """Match a dataset with a saved matcher (or a rule from flags); write the outputs;
    ``labels``: a labels file whose verdicts the matches keep (``search.match.labels``);
    ``explain_pairs``: pairs nearest the threshold whose contributions are kept
    (default ``EXPLAIN_PAIRS``).

    The dataset's collection is used as indexed (indexed first if missing)."""
    from retrieval.data import open_dataset
    from search.collection import open_collection

    if matcher_path is None and (flags is None or not flags.thresholds):
        raise UsageError(
            "give --matcher FILE (written by `search eval` on a labelled catalogue) "
            "or a rule: --threshold NAME=VALUE (repeat per score)"
        )
    matcher = Matcher.load(matcher_path) if matcher_path is not None else None
    if matcher is not None:  # a fine-tuned encoder folder deleted: one line, and its fix
        matcher.check_fine_tuned()
    dataset = open_dataset(dataset_path, format=fmt)
    products = list(dataset.products())
    if not products:
        raise UsageError(f"dataset {dataset_path} has no products")
    if matcher is not None:
        cfg = replace(cfg, stage1=replace(cfg.stage1, encoders=list(matcher.encoders)))
    if labels and not Path(labels).is_file():
        raise UsageError(f"--labels: no labels file {labels}")
    reviewed = read_labels(Path(labels), {p.id for p in products}) if labels else None

    def check(index: VectorIndex) -> None:  # refused here, before its encoders are compared
        given = index.info(collection) if matcher is not None and collection else None
        if matcher is not None and given is not None:
            matcher.check(given, matcher.chosen(rule_name))

    index, coll = open_collection(
        cfg, dataset, dataset_path, products, fmt, collection, None, progress, check
    )
    try:
        info = index.info(coll.name)
        assert info is not None
        if matcher is None:
            assert flags is not None
            matcher = flags.matcher(info)
        rule = matcher.chosen(rule_name)
        folder = Path(out) if out is not None else Path("runs") / f"{coll.name}-match"
        result = run_match(
            index, coll.name, dataset, matcher, rule, folder, progress,
            source=str(dataset_path),
            matcher_path=str(matcher_path) if matcher_path is not None else None,
            labels=reviewed, labels_path=str(labels) if labels else None,
            explain_pairs=EXPLAIN_PAIRS if explain_pairs is None else explain_pairs,
        )  # fmt: skip
    finally:
        index.close()
    result.notes += coll.notes
    return result
