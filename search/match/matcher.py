"""The saved matcher: which encoders, vectors, pair model and rules decide the matches.

A JSON file (never a pickle), written whole or not at all by ``search eval`` (tuned on
the valid split) or built from flags. It refuses, in one line, a collection built with
other encoders or lacking a vector it reads, and a pair model file that is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrieval.atomic import write_json
from retrieval.encoders.folders import encoder_saved
from retrieval.errors import UsageError
from retrieval.index.base import CollectionInfo
from retrieval.validation import read_json, show, validated
from search.match.matcher_file import FORMAT, VERSION, MatcherFile, rule_json
from search.match.rules import Rule


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
            if not encoder_saved(entry["path"]):
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
