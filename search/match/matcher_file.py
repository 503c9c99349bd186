"""What ``matcher.json`` may hold: the pydantic schema ``Matcher.load`` validates a file
against (types, ranges, finite numbers, known keys, a rule's primary score among its
thresholds, weights over the matcher's own vectors), and a rule written back with its
switched-off thresholds as ``"off"``.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)

from retrieval.checks import MAX_COUNT, MAX_HITS
from retrieval.validation import Strict, finite_json
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
