"""Validated configuration: dataclasses per component, loaded from TOML, overridden by flags.

Unknown keys are errors that name the nearest valid key, never silently ignored.
"""

from __future__ import annotations

import difflib
import logging
import os
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from retrieval.errors import UsageError
from retrieval.index.base import IndexConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

log = logging.getLogger(__name__)
DEFAULT_ENCODERS = ("text", "sparse")


def default_data_dir() -> Path:
    """``SEARCH_HOME`` if set, else the per-user data folder."""
    env = os.environ.get("SEARCH_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("product-search"))


@dataclass
class StoreConfig:
    """Where the vectors live: the embedded edge index or a Qdrant server."""

    backend: str = "edge"  # edge | server
    data_dir: Path = field(default_factory=default_data_dir)
    url: str | None = None  # server URL; default QDRANT_URL, else localhost:6333
    api_key: str | None = None  # default QDRANT_API_KEY

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).expanduser()
        if self.url and self.backend == "edge":
            self.backend = "server"  # a URL means a server
        if self.backend not in ("edge", "server"):
            raise UsageError(f"unknown back-end {self.backend!r}; known: edge, server")


@dataclass
class Stage1Config:
    """Encoders and the stage-1 query."""

    encoders: list[str] = field(default_factory=lambda: list(DEFAULT_ENCODERS))
    vector: str | None = None  # a vector name or "hybrid"; None: hybrid if several vectors
    hybrid: list[str] = field(default_factory=list)  # vectors fused by hybrid (default all)
    fusion: str = "rrf"
    k: int = 100
    batch_size: int = 256  # listings per encode batch: indexing and querying alike


@dataclass
class Stage2Config:
    """The reranker and how its scores join stage 1."""

    reranker: str | None = None  # KIND[:MODEL][,key=value...]; None or "none": no stage 2
    n: int = 10  # candidates kept after reranking
    blend: float = 0.0  # weight of the normalised stage-1 score in the final score

    def __post_init__(self) -> None:
        if self.n < 1 or not 0.0 <= self.blend <= 1.0:
            raise UsageError("stage2.n must be >= 1 and stage2.blend in [0, 1]")


@dataclass
class EvalConfig:
    """What ``search eval`` measures and where it writes."""

    split: str = "test"  # the split scored
    tune_split: str = "valid"  # the split the match threshold is swept on
    ks: list[int] = field(default_factory=lambda: [1, 5, 10, 50, 100])  # stage-1 recall@k
    thresholds: int = 200  # points of the threshold sweep
    out: Path | None = None  # run folder (default runs/<collection>-<timestamp>)

    def __post_init__(self) -> None:
        if self.out is not None:
            self.out = Path(self.out).expanduser()
        if not self.ks or any(int(k) < 1 for k in self.ks):
            raise UsageError("eval.ks must be cut-offs of at least 1")
        if self.thresholds < 2:
            raise UsageError("eval.thresholds must be >= 2")


@dataclass
class AppConfig:
    """The nested config of one run."""

    store: StoreConfig = field(default_factory=StoreConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    stage1: Stage1Config = field(default_factory=Stage1Config)
    stage2: Stage2Config = field(default_factory=Stage2Config)
    eval: EvalConfig = field(default_factory=EvalConfig)
    # [train.KIND] tables: each trainer's options, checked against the options class of
    # the trainer that reads them (search.train.registry)
    train: dict[str, dict[str, Any]] = field(default_factory=dict)


def check_keys(section: str, data: dict[str, Any], cls: type) -> None:
    """Every key of ``data`` is a field of the dataclass ``cls``; else an error naming
    the nearest valid key."""
    valid = [f.name for f in fields(cls)]
    for key in data:
        if key not in valid:
            near = difflib.get_close_matches(key, valid, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f"; valid: {', '.join(valid)}"
            raise UsageError(f"unknown config key {section}.{key}{hint}")


SECTIONS: dict[str, type] = {
    "store": StoreConfig,
    "index": IndexConfig,
    "stage1": Stage1Config,
    "stage2": Stage2Config,
    "eval": EvalConfig,
}


def read_toml(path: str | Path) -> dict[str, Any]:
    """A TOML file as a dict; a missing file or bad TOML is a usage error."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"config file not found: {p}")
    try:
        return tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"bad TOML in {p}: {exc}") from exc


def load_config(path: str | Path | None = None, **overrides: dict[str, Any]) -> AppConfig:
    """Read a TOML config (sections store / index / stage1 / stage2 / eval / train.KIND),
    then apply flag overrides given as ``section={key: value}`` (None values are ignored)."""
    return build_config(read_toml(path) if path is not None else {}, **overrides)


def build_config(data: dict[str, Any], **overrides: dict[str, Any]) -> AppConfig:
    """The config from parsed TOML sections plus flag overrides (see ``load_config``)."""
    sections = SECTIONS
    for key in data:
        if key not in sections and key != "train":
            near = difflib.get_close_matches(key, [*sections, "train"], n=1)
            raise UsageError(
                f"unknown config section [{key}]" + (f"; did you mean [{near[0]}]?" if near else "")
            )
    data = _moved_keys(data)
    built: dict[str, Any] = {}
    for name, cls in sections.items():
        values = dict(data.get(name, {}))
        values.update({k: v for k, v in overrides.get(name, {}).items() if v is not None})
        check_keys(name, values, cls)
        try:
            built[name] = cls(**values)
        except TypeError as exc:
            raise UsageError(f"bad [{name}] config: {exc}") from exc
    return AppConfig(**built, train=_train_tables(data.get("train", {})))


# Keys that moved to another section: (old section, key) -> new section.
MOVED = {("eval", "batch_size"): "stage1"}


def _moved_keys(data: dict[str, Any]) -> dict[str, Any]:
    """Old spellings of moved keys still work, with a deprecation warning."""
    data = {
        name: dict(values) if isinstance(values, dict) else values for name, values in data.items()
    }
    for (old, key), new in MOVED.items():
        if isinstance(data.get(old), dict) and key in data[old]:
            value = data[old].pop(key)
            log.warning("[%s] %s is deprecated: it moved to [%s] %s", old, key, new, key)
            data.setdefault(new, {}).setdefault(key, value)
    return data


def _train_tables(data: Any) -> dict[str, dict[str, Any]]:
    """The ``[train.KIND]`` tables, each a table of one trainer's options."""
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise UsageError("[train] holds one table per trainer: [train.pair-gbdt], [train.clip] ...")
    return {kind: dict(values) for kind, values in data.items()}


__all__ = [
    "AppConfig",
    "EvalConfig",
    "SECTIONS",
    "Stage1Config",
    "Stage2Config",
    "StoreConfig",
    "build_config",
    "check_keys",
    "default_data_dir",
    "load_config",
    "read_toml",
]
