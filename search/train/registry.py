"""One registry of trainers, keyed by exact names: pair-gbdt, cross-encoder, qwen-vl
(stage-2 rerankers), clip, text, timm (bi-encoders).

A trainer module registers a function ``run(cfg, job, options) -> TrainReport`` with
``@register_trainer(NAME, ROLE, OptionsClass)``. ``OptionsClass`` is a dataclass of every
setting the trainer takes; the ``[train.NAME]`` table of the TOML config and the command
line's flags both fill it (flags win). Adding a trainer means one module here plus one
line in ``_MODULES``; the CLI does not change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, cast

from retrieval.checks import check_types
from retrieval.errors import UsageError
from retrieval.registry import Registry
from retrieval.types import ProgressFactory
from search.config import AppConfig, check_keys

log = logging.getLogger(__name__)
ROLES = ("reranker", "biencoder")
# Modules whose import registers a trainer; imported on first use (heavy stacks stay unloaded).
_MODULES = {
    "pair-gbdt": "search.train.pair_gbdt",
    "cross-encoder": "search.train.cross_encoder",
    "qwen-vl": "search.train.qwen_vl",
    "clip": "search.train.clip",
    "text": "search.train.text",
    "timm": "search.train.arcface",
}


@dataclass
class TrainJob:
    """What every trainer is asked, whatever its kind: a dataset, where the model goes,
    and how to reach the dataset's collection (indexed first when a trainer needs it)."""

    dataset: str
    out: Path
    collection: str | None = None
    fmt: str | None = None
    progress: ProgressFactory | None = None


@dataclass
class SplitOptions:
    """Options every trainer shares: the split trained on and the one validated on."""

    split: str = "train"
    valid_split: str = "valid"  # '' for none (bi-encoders)


@dataclass
class TrainReport:
    """What a training run did; one shape for every trainer (empty where it does not apply)."""

    kind: str
    out: Path
    train_size: int  # labelled queries, mined rows or listings trained on
    valid_size: int  # queries or listings validated on
    summary: str  # "412 trees", "30 steps, loss 0.1234" ...
    collection: str = ""  # the collection stage 1 ran on, if it ran
    vector: str = ""
    k: int = 0
    metrics: dict[str, float] = field(default_factory=dict)  # stage1/... vs stage2/... on valid
    losses: list[float] = field(default_factory=list)  # training loss per logged step
    evals: list[dict[str, float]] = field(default_factory=list)  # validation per epoch
    info: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class Trainer:
    """A registered trainer: its role, its options class and the function that runs it."""

    name: str
    role: str
    options: type
    run: Callable[[AppConfig, TrainJob, Any], TrainReport]

    def __call__(self, cfg: AppConfig, job: TrainJob, options: Any) -> TrainReport:
        return self.run(cfg, job, options)


TRAINERS: Registry[TrainReport] = Registry("trainer", lazy=_MODULES)


def register_trainer(name: str, role: str, options: type) -> Callable[[Callable], Callable]:
    """Register ``run(cfg, job, options) -> TrainReport`` under the exact ``name``."""
    if role not in ROLES:
        raise ValueError(f"trainer role {role!r}; known: {', '.join(ROLES)}")

    def deco(run: Callable) -> Callable:
        TRAINERS.register(name)(Trainer(name, role, options, run))
        return run

    return deco


def get_trainer(name: str, role: str) -> Trainer:
    """The trainer registered under ``name``, which must train a ``role``."""
    trainer = cast(Trainer, TRAINERS.get(name))
    if trainer.role != role:
        raise UsageError(f"{name} trains a {trainer.role}: use `search train {trainer.role}`")
    return trainer


def build_options(trainer: Trainer, table: dict[str, Any], flags: dict[str, Any]) -> Any:
    """The trainer's options: its defaults, then the ``[train.NAME]`` table, then the
    flags given (None: not given). A flag the trainer does not take is ignored with a
    warning (a script written for another kind keeps running)."""
    check_keys(f"train.{trainer.name}", table, trainer.options)
    check_types(f"train.{trainer.name}", table, trainer.options)  # types, finite numbers
    known = {f.name for f in fields(trainer.options)}
    given = {k: v for k, v in flags.items() if v is not None}
    for key in sorted(set(given) - known):
        log.warning("--%s does not apply to %s; ignored", key.replace("_", "-"), trainer.name)
    values = {**table, **{k: v for k, v in given.items() if k in known}}
    try:
        return trainer.options(**values)
    except TypeError as exc:
        raise UsageError(f"bad options for trainer {trainer.name!r}: {exc}") from exc


def train(
    cfg: AppConfig, name: str, role: str, job: TrainJob, flags: dict[str, Any]
) -> TrainReport:
    """Train the ``role`` named ``name`` with ``cfg.train[name]`` overridden by ``flags``."""
    for table in cfg.train:
        if table not in TRAINERS.kinds():
            known = ", ".join(TRAINERS.kinds())
            raise UsageError(f"unknown config section [train.{table}]; trainers: {known}")
    trainer = get_trainer(name, role)
    return trainer(cfg, job, build_options(trainer, cfg.train.get(name, {}), flags))
