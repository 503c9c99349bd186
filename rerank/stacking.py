"""Stacking: the scores of other rerankers as ``pair-gbdt`` features.

The Shopee 2nd place combined its models this way: a gradient-boosted model over pair
features that include the scores of learned text and image-text models, so stage 2
weighs lexical and number agreement against what a cross-encoder (or Qwen-VL) reads.

Spec: ``pair-gbdt:MODEL.txt,with=cross-encoder:PATH`` (several: ``with=A+B``; a stacked
reranker's own options use ``;``: ``with=cross-encoder:PATH;max_length=64``). Each
stacked reranker adds the column ``stack<i>_<kind>``. The model's sidecar records which
rerankers it was trained with (spec, kind and a fingerprint of the model's files): a
model asked to run with other ones is refused, since its trees read those columns.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rerank.base import Pair, Reranker, build_reranker
from rerank.pair_features import STACK_PREFIX
from retrieval.errors import SearchError, UsageError
from retrieval.types import Candidate, ComponentSpec, Product, ProgressFactory

log = logging.getLogger(__name__)

_SAMPLE = 1 << 20  # bytes hashed at each end of a large weights file


@dataclass
class Stacked:
    """One stacked reranker and the column its scores fill."""

    reranker: Reranker
    spec: str
    kind: str
    fingerprint: str
    column: str

    def describe(self) -> dict[str, str]:
        """What the model's sidecar records of it."""
        return {"spec": self.spec, "kind": self.kind, "fingerprint": self.fingerprint}


def parse_with(value: str | None) -> list[str]:
    """``with=`` as reranker specs: ``+`` separates rerankers, ``;`` their options."""
    if not value or not value.strip():
        return []
    specs = [part.strip().replace(";", ",") for part in value.split("+")]
    if any(not s for s in specs):
        raise UsageError(f"with={value!r}: an empty reranker spec between '+'")
    return specs


def fingerprint(model: str | None) -> str:
    """A short hash of a model's files (config and the size and ends of each weights
    file), so a moved folder still matches and a retrained one does not; a hub name
    that is no local path is its own fingerprint."""
    path = Path(model) if model else None
    if path is None or not path.exists():
        return f"name:{model}"
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for f in files:
        rel = f.relative_to(path).as_posix() if path.is_dir() else f.name
        if path.is_dir() and (rel.startswith(("checkpoints/", "adapter/")) or rel.endswith(".md")):
            continue  # training leftovers and reports do not change the scores
        if path.is_dir() and rel in ("best.json", "train_info.json"):
            continue
        size = f.stat().st_size
        digest.update(f"{rel}:{size}".encode())
        with f.open("rb") as fh:
            digest.update(fh.read(_SAMPLE))
            if size > 2 * _SAMPLE:
                fh.seek(size - _SAMPLE)
                digest.update(fh.read(_SAMPLE))
    return digest.hexdigest()[:16]


def column_name(index: int, kind: str) -> str:
    """The feature column of the ``index``-th (1-based) stacked reranker."""
    return f"{STACK_PREFIX}{index}_{kind.replace('-', '_')}"


def build_stack(specs: Sequence[str]) -> list[Stacked]:
    """Build the stacked rerankers; a model that cannot be loaded, or a kind that
    cannot be stacked, is one line naming the ``with=`` entry."""
    out = []
    for i, text in enumerate(specs, start=1):
        spec = ComponentSpec.parse(text)
        if spec.kind == "pair-gbdt":
            raise UsageError(f"with={text}: a pair-gbdt model cannot be stacked in another")
        if spec.model and _looks_local(spec.model) and not Path(spec.model).exists():
            raise UsageError(f"with={text}: model {spec.model} not found")
        try:
            reranker = build_reranker(spec)
        except SearchError as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UsageError(f"with={text}: {first}") from exc
        out.append(Stacked(reranker, str(spec), spec.kind, fingerprint(spec.model), ""))
        out[-1].column = column_name(i, spec.kind)
    return out


def _looks_local(model: str) -> bool:
    return model.startswith((".", "/", "~")) or model.count("/") != 1


def check_stack(trained: Sequence[dict[str, Any]], given: Sequence[Stacked], model: str) -> None:
    """Refuse a model run with other stacked rerankers than it was trained with."""
    want = [(t.get("kind"), t.get("fingerprint")) for t in trained]
    have = [(s.kind, s.fingerprint) for s in given]
    if want == have:
        return
    trained_specs = "+".join(str(t.get("spec")) for t in trained) or "none"
    given_specs = "+".join(s.spec for s in given) or "none"
    why = (
        "the same kinds, other model files"
        if [w[0] for w in want] == [h[0] for h in have]
        else "other kinds"
    )
    raise UsageError(
        f"pair-gbdt model {model} was trained with with={trained_specs}, given "
        f"with={given_specs} ({why}); pass the rerankers it was trained with, or retrain it"
    )


class StoredScores:
    """A stand-in for a stacked reranker that returns the scores ``add_stack_features``
    stored on the candidates, so a trainer's report does not score the pairs again."""

    needs_features = False

    def __init__(self, column: str) -> None:
        self.column = column
        self.spec = f"stored:{column}"

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        """The stored score of each pair."""
        return [float(c.features[self.column]) for _, c in pairs]


def stack_scores(stacked: Sequence[Stacked], pairs: Sequence[Pair]) -> dict[str, list[float]]:
    """Each stacked reranker's score of every pair, by column."""
    return {s.column: [float(v) for v in s.reranker.score(pairs)] for s in stacked}


def add_stack_features(
    stacked: Sequence[Stacked],
    items: Sequence[tuple[Product, Sequence[Candidate]]],
    progress: ProgressFactory | None = None,
    chunk: int = 16,
) -> None:
    """Score every (query, candidate) of ``items`` with the stacked rerankers and store
    the scores on the candidates' features (how training candidates get their columns);
    ``chunk`` queries at a time, each ticking ``progress`` (a cross-encoder pass over a
    few hundred queries x 50 candidates takes minutes on a CPU)."""
    if not stacked or not any(cands for _, cands in items):
        return
    tick = progress("stacked rerankers", len(items)) if progress else None
    for start in range(0, len(items), chunk):
        part = items[start : start + chunk]
        pairs = [(q, c) for q, cands in part for c in cands]
        if pairs:
            for column, scores in stack_scores(stacked, pairs).items():
                for (_, cand), score in zip(pairs, scores):
                    cand.features[column] = score
        if tick:
            tick(len(part))
