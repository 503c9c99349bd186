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

from retrieval.checks import MAX_COUNT, MAX_HITS, check_range, check_types
from retrieval.errors import UsageError
from retrieval.index.base import IndexConfig
from search.config_fine_tune import FineTuneConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

log = logging.getLogger(__name__)
DEFAULT_ENCODERS = ("text", "sparse")


def default_data_dir() -> Path:
    """``SEARCH_HOME`` if set, else the per-user data folder."""
    env = os.environ.get("SEARCH_HOME")
    return Path(env).expanduser() if env else user_data_home()


def user_data_home() -> Path:
    """The per-user data folder (platformdirs), whatever ``SEARCH_HOME`` says."""
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

    def __post_init__(self) -> None:
        check_range("stage1.k", self.k, 1, MAX_HITS)
        check_range("stage1.batch_size", self.batch_size, 1, MAX_COUNT)
        if self.fusion not in ("rrf", "dbsf"):
            raise UsageError(f"unknown fusion {self.fusion!r}; known: rrf, dbsf")


@dataclass
class Stage2Config:
    """The reranker and how its scores join stage 1."""

    reranker: str | None = None  # KIND[:MODEL][,key=value...]; None or "none": no stage 2
    n: int = 10  # candidates kept after reranking
    blend: float = 0.0  # weight of the normalised stage-1 score in the final score

    def __post_init__(self) -> None:
        check_range("stage2.n", self.n, 1, MAX_HITS)
        check_range("stage2.blend", self.blend, 0.0, 1.0)


@dataclass
class EvalConfig:
    """What ``search eval`` measures and where it writes."""

    split: str = "test"  # the split scored
    tune_split: str = "valid"  # the split the match threshold is swept on
    ks: list[int] = field(default_factory=lambda: [1, 5, 10, 50, 100])  # stage-1 recall@k
    thresholds: int = 200  # points of the threshold sweep
    out: Path | None = None  # run folder (default runs/<collection>-<timestamp>)
    # catalogues (self-match): the matcher's candidate depth, INB rounds, and whether to
    # train a pair model on the train split's candidate edges (the match table's stage 2),
    # and what a split's listings are matched against: their split, or the catalogue
    match_k: int = 20
    match_inb: int = 1
    match_pair: bool = False
    match_against: str = "split"
    # catalogues: queries read their stored vectors (none encoded again); false encodes
    # them as queries (a sparse encoder's query weights, CLIP's text-for-image fallback)
    stored_queries: bool = True
    # catalogues: a reviewer's labels (search.match.labels JSONL) learnt from by the pair
    # model and the threshold tuning; those touching the scored split only scored
    labels: Path | None = None

    def __post_init__(self) -> None:
        if self.labels is not None:
            self.labels = Path(self.labels).expanduser()
            if not self.labels.is_file():
                raise UsageError(f"eval.labels: no labels file {self.labels}")
        if self.match_k < 1 or not 0 <= self.match_inb <= 3:
            raise UsageError("eval.match_k must be >= 1 and eval.match_inb 0 to 3")
        if self.match_against not in ("split", "catalogue"):
            raise UsageError("eval.match_against must be 'split' or 'catalogue'")
        if self.out is not None:
            self.out = Path(self.out).expanduser()
        if not self.ks:
            raise UsageError("eval.ks must list cut-offs of at least 1")
        check_range("eval.thresholds", self.thresholds, 2, MAX_COUNT)
        for k in self.ks:
            check_range("eval.ks", k, 1, MAX_HITS)


@dataclass
class AppConfig:
    """The nested config of one run."""

    store: StoreConfig = field(default_factory=StoreConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    stage1: Stage1Config = field(default_factory=Stage1Config)
    stage2: Stage2Config = field(default_factory=Stage2Config)
    eval: EvalConfig = field(default_factory=EvalConfig)
    fine_tune: FineTuneConfig = field(default_factory=FineTuneConfig)
    # [train.KIND] tables: each trainer's options, checked against the options class of
    # the trainer that reads them (search.train.registry)
    train: dict[str, dict[str, Any]] = field(default_factory=dict)
    # not sections (check_keys never sees them): the TOML file this config was read from,
    # absolute (None: defaults and flags alone), and the "section.key" names it set
    source: Path | None = None
    source_keys: frozenset[str] = frozenset()


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
    "fine_tune": FineTuneConfig,
}


def read_toml(path: str | Path) -> dict[str, Any]:
    """A TOML file as a dict; a missing file or bad TOML is a usage error."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"config file not found: {p}")
    if not p.is_file():
        raise UsageError(f"--config {p} is a folder; name a TOML file")
    try:
        return tomllib.loads(p.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read config {p}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"config {p} is not UTF-8 text (a binary file?)") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"bad TOML in {p}: {exc}") from exc


def load_config(path: str | Path | None = None, **overrides: dict[str, Any]) -> AppConfig:
    """Read a TOML config (sections store / index / stage1 / stage2 / eval / train.KIND),
    then apply flag overrides given as ``section={key: value}`` (None values are ignored)."""
    if path is None:
        return build_config({}, **overrides)
    return build_config(read_toml(path), source=path, **overrides)


def build_config(
    data: dict[str, Any], source: str | Path | None = None, **overrides: dict[str, Any]
) -> AppConfig:
    """The config from parsed TOML sections plus flag overrides (see ``load_config``); an
    error in a section the file ``source`` sets names the file first."""
    sections = SECTIONS
    where = f"{source}: " if source is not None else ""
    for key in data:
        if key not in sections and key != "train":
            near = difflib.get_close_matches(key, [*sections, "train"], n=1)
            raise UsageError(
                f"{where}unknown config section [{key}]"
                + (f"; did you mean [{near[0]}]?" if near else "")
            )
    data = _moved_keys(data)
    built: dict[str, Any] = {}
    for name, cls in sections.items():
        table = data.get(name, {})
        if not isinstance(table, dict):
            raise UsageError(f"{where}config [{name}] must be a table of keys, not {table!r}")
        values = dict(table)
        values.update({k: v for k, v in overrides.get(name, {}).items() if v is not None})
        try:
            check_keys(name, values, cls)
            check_types(name, values, cls)
            try:
                built[name] = cls(**values)
            except TypeError as exc:
                raise UsageError(f"bad [{name}] config: {exc}") from exc
        except UsageError as exc:
            if not where or not table:  # the flags alone: no file to name
                raise
            raise UsageError(f"{where}{exc}") from exc
    try:
        train = _train_tables(data.get("train", {}))
    except UsageError as exc:
        raise UsageError(f"{where}{exc}") from exc
    if source is None:
        return AppConfig(**built, train=train)
    keys = frozenset(f"{name}.{key}" for name in sections for key in data.get(name, {}))
    return AppConfig(**built, train=train, source=Path(source).resolve(), source_keys=keys)


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
    "FineTuneConfig",
    "SECTIONS",
    "Stage1Config",
    "Stage2Config",
    "StoreConfig",
    "build_config",
    "check_keys",
    "default_data_dir",
    "load_config",
    "read_toml",
    "user_data_home",
]
