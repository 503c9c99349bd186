"""The saved matcher: which encoders, vectors, pair model and rules decide the matches.

A JSON file (never a pickle), written whole or not at all by ``search eval`` (tuned on
the valid split) or built from flags. It refuses, in one line, a collection built with
other encoders or lacking a vector it reads, and a pair model file that is missing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)

from retrieval.atomic import write_json
from retrieval.checks import MAX_COUNT, MAX_HITS
from retrieval.errors import UsageError
from retrieval.index.base import CollectionInfo
from retrieval.validation import Strict, finite_json, read_json, show, validated
from search.match.groups import GROUPINGS
from search.match.rules import Rule

FORMAT = "product-search-matcher"
VERSION = 1
MAX_SEEDS = 100
PAIR_SCORE = "pair"  # the pair model's score (search.match.pair_model.PAIR)


OFF = "off"  # in matcher.json: a threshold no score reaches (the tuner's float("inf"))


def _off_or_finite(value: Any, handler: ValidatorFunctionWrapHandler) -> float:
    """``"off"`` is +inf (a switched-off threshold); anything else a finite number."""
    return math.inf if value == OFF else handler(value)


Threshold = Annotated[float, WrapValidator(_off_or_finite)]


def _off(value: Any) -> Any:
    """+inf written as ``"off"``: matcher.json holds no ``Infinity`` token."""
    return OFF if isinstance(value, float) and value == math.inf else value


class RuleFile(Strict):
    """A rule as ``matcher.json`` holds it (``search.match.rules.Rule``); a threshold is
    a finite number or ``"off"``."""

    name: str = Field(min_length=1)
    thresholds: dict[str, Threshold] = Field(min_length=1)
    primary: str
    min2: Threshold | None = None
    groups: str = "none"
    group_cap: int = Field(0, ge=0, le=MAX_COUNT)  # 0: no cap
    group_threshold: Threshold | None = None
    inb: int = Field(0, ge=0, le=3)
    inb_threshold: Threshold | None = None
    notes: dict[str, Any] = Field(default_factory=dict)

    _finite_notes = field_validator("notes")(finite_json)

    @field_validator("groups")
    @classmethod
    def _known_grouping(cls, value: str) -> str:
        if value not in GROUPINGS:
            raise ValueError(f"unknown grouping {value!r}; known: {', '.join(GROUPINGS)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> RuleFile:
        if self.primary not in self.thresholds:
            raise ValueError(f"rule {self.name!r}: primary score {self.primary!r} has no threshold")
        if self.inb and PAIR_SCORE in {*self.thresholds, self.primary}:
            raise ValueError(
                f"rule {self.name!r}: inb (neighbourhood blending) rescores edges by their "
                "cosines, which have no pair score: set inb to 0 or threshold no 'pair'"
            )
        return self


class PairFile(Strict):
    """The ``pair`` object of ``matcher.json``."""

    model: str = Field(min_length=1)
    columns: list[str] = Field(min_length=1)
    neighbours: int = Field(5, ge=1, le=MAX_HITS)
    seeds: int = Field(1, ge=1, le=MAX_SEEDS)
    files: list[dict[str, Any]] = Field(default_factory=list)


class FineTunedFile(Strict):
    """An encoder ``search eval --fine-tune`` trained: its folder, step and loss, and the
    command that rebuilds it (``info.fine_tuned`` of ``matcher.json``, by vector name)."""

    path: str = Field(min_length=1)
    command: str = Field(min_length=1)
    best_step: int | None = Field(None, ge=0)
    loss: str | None = None  # the loss chosen on valid: mnrl, arcface (image: arcface)


class InfoFile(Strict):
    """The ``info`` of ``matcher.json``: what it was tuned on (``search.match.tuning``);
    ``search match`` reads ``tuned_against``, ``tuned_listings``, ``scored_on`` and
    ``test_f1``."""

    dataset: str | None = None
    collection: str | None = None
    tuned_on: str | None = None
    tuned_against: Literal["split", "catalogue"] | None = None
    tuned_listings: int | None = Field(None, ge=0)
    scored_on: str | None = None  # the split test_f1 was measured on (held out from tuning)
    valid_f1: dict[str, float] = Field(default_factory=dict)
    test_f1: dict[str, float] = Field(default_factory=dict)
    fine_tuned: dict[str, FineTunedFile] = Field(default_factory=dict)


class MatcherFile(Strict):
    """The whole of ``matcher.json``: what ``Matcher.load`` accepts."""

    format: str
    version: int
    encoders: list[str]
    vectors: list[str]
    weights: dict[str, float] = Field(min_length=1)
    k: int = Field(20, ge=1, le=MAX_HITS)
    pair: PairFile | None = None
    rule: str
    rules: list[RuleFile] = Field(min_length=1)
    info: InfoFile = Field(default_factory=InfoFile)

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        if any(w < 0 for w in value.values()) or not any(w > 0 for w in value.values()):
            raise ValueError("weights must be 0 or more, at least one above 0")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> MatcherFile:
        # no vectors at all: `check` says so, naming the collection's
        unknown = sorted(set(self.weights) - set(self.vectors)) if self.vectors else []
        if unknown:
            raise ValueError(f"weights name {unknown}, which are not among vectors {self.vectors}")
        names = [r.name for r in self.rules]
        if self.rule not in names:
            raise ValueError(f"rule {self.rule!r} is not among rules {names}")
        return self


def rule_json(rule: Rule) -> dict[str, Any]:
    """A rule as matcher.json holds it: switched-off thresholds (+inf) as ``"off"``."""
    data = rule.to_json()
    data["thresholds"] = {k: _off(v) for k, v in data["thresholds"].items()}
    for key in ("min2", "group_threshold", "inb_threshold"):
        data[key] = _off(data[key])
    return data


@dataclass
class PairModel:
    """A pair model on candidate edges: LightGBM text files beside the matcher, one per
    seed (``model``, then ``model`` with ``.1``, ``.2``... before its suffix), their
    probabilities averaged."""

    model: str  # path relative to the matcher file (or absolute)
    columns: list[str]
    neighbours: int = 5
    seeds: int = 1
    files: list[dict[str, Any]] = field(default_factory=list)  # sha256 and size per path

    def path(self, base: Path) -> Path:
        p = Path(self.model)
        return p if p.is_absolute() else base / p

    def paths(self, base: Path) -> list[Path]:
        """Every seed's model file."""
        first = self.path(base)
        return [first] + [
            first.with_name(f"{first.stem}.{s}{first.suffix}") for s in range(1, self.seeds)
        ]


@dataclass
class Matcher:
    """Encoders, vectors and their weights in the mean, candidate depth, and rules."""

    encoders: list[str]
    vectors: list[str]
    weights: dict[str, float]
    rules: list[Rule]
    rule: str  # the rule `search match` applies
    k: int = 20
    pair: PairModel | None = None
    info: dict[str, Any] = field(default_factory=dict)
    base: Path = field(default=Path("."), compare=False)

    def chosen(self, name: str | None = None) -> Rule:
        """The named rule (default: the matcher's own)."""
        want = name or self.rule
        for r in self.rules:
            if r.name == want:
                return r
        known = ", ".join(r.name for r in self.rules)
        raise UsageError(f"the matcher has no rule {want!r}; it has: {known}")

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "encoders": self.encoders,
            "vectors": self.vectors,
            "weights": self.weights,
            "k": self.k,
            "pair": None
            if self.pair is None
            else {
                "model": self.pair.model,
                "columns": self.pair.columns,
                "neighbours": self.pair.neighbours,
                "seeds": self.pair.seeds,
                "files": self.pair.files,
            },
            "rule": self.rule,
            "rules": [rule_json(r) for r in self.rules],
            "info": self.info,
        }

    def save(self, path: str | Path) -> Path:
        """Write the matcher as JSON, atomically."""
        return write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> Matcher:
        """Read a matcher file; anything but this tool's matcher JSON (``MatcherFile``:
        types, ranges, finite numbers, known keys, weights of its own vectors) is one line
        naming the file and the key."""
        p = Path(path)
        data = read_json(p, "matcher file")
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise UsageError(f"{p} is not a matcher file (written by `search eval`)")
        if data.get("version") != VERSION:
            raise UsageError(
                f"{p}: matcher version {show(data.get('version'))}, this tool reads {VERSION}"
            )
        m = validated(MatcherFile, data, p)
        return cls(
            encoders=m.encoders,
            vectors=m.vectors,
            weights=m.weights,
            rules=[Rule(**r.model_dump()) for r in m.rules],
            rule=m.rule,
            k=m.k,
            pair=PairModel(**m.pair.model_dump()) if m.pair else None,
            info=m.info.model_dump(exclude_unset=True),
            base=p.parent,
        )

    def check_fine_tuned(self) -> None:
        """Refuse, in one line naming it and the command that rebuilds it, a fine-tuned
        encoder folder (``search eval --fine-tune``) that is gone."""
        for vector, entry in (self.info.get("fine_tuned") or {}).items():
            folder = Path(entry["path"])  # a sentence-transformers or a timm encoder folder
            if not any((folder / f).is_file() for f in ("modules.json", "timm_config.json")):
                raise UsageError(
                    f"the matcher's fine-tuned encoder {vector!r} ({entry['path']}) is "
                    f"missing; rebuild it with: {entry['command']}"
                )

    def check(self, info: CollectionInfo, rule: Rule) -> None:
        """Refuse a collection this matcher was not tuned on, or a missing pair model."""
        have = sorted(info.meta.get("encoders") or [])
        if have != sorted(self.encoders):
            raise UsageError(
                f"the matcher was tuned with encoders {self.encoders}, but collection "
                f"{info.name!r} was built with {have}; index with those encoders or tune a "
                "matcher on this collection with `search eval`"
            )
        stored = {v.name for v in info.vectors}
        if not self.vectors:
            raise UsageError(
                f'the matcher names no vectors (its "vectors" list is empty); collection '
                f"{info.name!r} has {sorted(stored)}: list those it reads, or tune a matcher "
                "with `search eval`"
            )
        missing = [v for v in self.vectors if v not in stored]
        if missing:
            raise UsageError(
                f"the matcher reads vector(s) {missing}; collection {info.name!r} has "
                f"{sorted(stored)}"
            )
        if "pair" in rule.scores:
            if self.pair is None:
                raise UsageError(f"rule {rule.name!r} needs a pair model; the matcher has none")
            for path in self.pair.paths(self.base):
                if not path.is_file():
                    raise UsageError(f"the matcher's pair model {path} is missing")
