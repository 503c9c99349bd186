"""The options several commands take, each declared once as an ``Annotated`` alias, and
their groups: dataclasses handed to a command whole (``option_group``): the store options
(``--config --data-dir --backend --qdrant-url --qdrant-api-key``, ``StoreFlags``, turned
into the run's config by ``StoreFlags.load``) and the pipeline's stage options
(``--encoder --vector --hybrid --fusion --k --batch-size --reranker --n --blend``,
``StageFlags``, turned into config sections by ``StageFlags.sections``).

Command modules import this module; it imports none of them.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_type_hints

import typer

from retrieval.checks import MAX_COUNT, MAX_HITS

F = TypeVar("F", bound=Callable[..., Any])

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Embedded index home (default: $SEARCH_HOME or the user data dir)."
    ),
]
Backend = Annotated[
    str | None, typer.Option("--backend", help="edge (embedded, default) or server.")
]
Url = Annotated[
    str | None,
    typer.Option(
        "--qdrant-url", envvar="QDRANT_URL", help="Qdrant server URL (implies --backend server)."
    ),
]
ApiKey = Annotated[
    str | None, typer.Option("--qdrant-api-key", envvar="QDRANT_API_KEY", help="Qdrant API key.")
]
ReadConsistency = Annotated[
    str | None,
    typer.Option(
        "--read-consistency",
        metavar="LEVEL",
        help="Qdrant cluster: replicas a read must agree with (all, majority, quorum or N).",
    ),
]
ConfigFile = Annotated[
    Path | None,
    typer.Option("--config", help="TOML config (sections store, index, stage1, stage2, eval)."),
]
Collection = Annotated[str | None, typer.Option("--collection", "-c", help="Collection name.")]
Port = Annotated[
    int, typer.Option("--port", min=0, max=65535, help="Port to listen on; 0 picks a free one.")
]
Encoders = Annotated[
    list[str] | None,
    typer.Option(
        "--encoder",
        "-e",
        help="KIND[:MODEL][,key=value...]; repeat for several "
        "(default: an existing collection's, else text and sparse).",
    ),
]
Vector = Annotated[
    str | None,
    typer.Option(
        "--vector",
        help="Stage-1 vector or 'hybrid' (default: hybrid when the collection has several).",
    ),
]
Hybrid = Annotated[
    str | None,
    typer.Option("--hybrid", help="Comma-separated vectors fused by hybrid (default: all)."),
]
Fusion = Annotated[str | None, typer.Option("--fusion", help="rrf or dbsf.")]
RerankerSpec = Annotated[
    str | None,
    typer.Option(
        "--reranker", help="Stage 2: KIND[:MODEL][,key=value...] or none, e.g. pair-gbdt:model.txt."
    ),
]
DatasetPath = Annotated[
    str,
    typer.Argument(help="Dataset path: Shopee folder/zip, query/gallery folder, catalogue file."),
]
Format = Annotated[
    str | None,
    typer.Option("--format", help="Force the dataset format: shopee, query-gallery, catalog."),
]
StageK = Annotated[
    int | None,
    typer.Option("--k", min=1, max=MAX_HITS, help="Stage-1 candidates (default 100)."),
]
KeptN = Annotated[
    int | None,
    typer.Option("--n", min=1, max=MAX_HITS, help="Kept after stage 2 (default 10)."),
]


def finite(value: float | None) -> float | None:
    """A float flag's callback: NaN and infinities are usage errors (click's ranges let NaN
    through: every comparison with it is false)."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


LabelsFile = Annotated[
    Path | None,
    typer.Option(
        "--labels",
        help="A reviewer's labels (JSONL, e.g. RUN/labels.jsonl from the studio): eval learns "
        "from them, match keeps their verdicts.",
    ),
]
Blend = Annotated[
    float | None,
    typer.Option(
        "--blend", min=0.0, max=1.0, callback=finite, help="Stage-1 score weight in stage 2 (0-1)."
    ),
]
FineTune = Annotated[
    str | None,
    typer.Option(
        "--fine-tune",
        help="Catalogues: fine-tune these encoders (text, image, or text,image) on the "
        "train split's groups first, the step count chosen on valid; their vectors join the "
        "zero-shot ones. image starts from the --encoder timm:... one.",
    ),
]
FineTuneLoss = Annotated[
    str | None,
    typer.Option(
        "--fine-tune-loss",
        help="With --fine-tune text: mnrl (in-batch negatives), arcface, or best (both, "
        "the better on valid kept; the default).",
    ),
]
ResumeRun = Annotated[
    bool | None,
    typer.Option(
        "--resume/--no-resume",
        help="Go on from a killed run of the same --out: finished phases kept, the "
        "fine-tuning from its last checkpoint.",
    ),
]
QueryBatch = Annotated[
    int | None,
    typer.Option("--batch-size", min=1, max=MAX_COUNT, help="Queries per pipeline batch (256)."),
]


def comma_list(value: str | None) -> list[str] | None:
    """``a,b`` -> ``["a", "b"]``; None stays None (the config keeps its value)."""
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@dataclass(frozen=True)
class StoreFlags:
    """The store options of one command line, and the config they select."""

    config: ConfigFile = None
    data_dir: DataDir = None
    backend: Backend = None
    qdrant_url: Url = None
    qdrant_api_key: ApiKey = None
    read_consistency: ReadConsistency = None

    @property
    def store(self) -> dict[str, Any]:
        """The ``[store]`` overrides these flags make."""
        return {
            "data_dir": self.data_dir,
            "backend": self.backend,
            "url": self.qdrant_url,
            "api_key": self.qdrant_api_key,
        }

    def load(self, **sections: dict[str, Any]) -> Any:
        """The run's config: the TOML file, then these flags, then ``sections`` (flag
        overrides of stage1, stage2, eval, index, train ...; None values are ignored)."""
        from search.config import load_config

        if self.read_consistency is not None:
            sections["index"] = {"read_consistency": self.read_consistency} | dict(
                sections.get("index") or {}
            )
        return load_config(self.config, store=self.store, **sections)


@dataclass(frozen=True)
class StageFlags:
    """The stage options of a command that runs the pipeline over a dataset."""

    encoder: Encoders = None
    vector: Vector = None
    hybrid: Hybrid = None
    fusion: Fusion = None
    k: StageK = None
    batch_size: QueryBatch = None
    reranker: RerankerSpec = None
    n: KeptN = None
    blend: Blend = None

    def sections(self) -> dict[str, dict[str, Any]]:
        """The ``stage1`` and ``stage2`` overrides these flags make (for ``StoreFlags.load``)."""
        return {
            "stage1": {
                "encoders": self.encoder or None,
                "vector": self.vector,
                "hybrid": comma_list(self.hybrid),
                "fusion": self.fusion,
                "k": self.k,
                "batch_size": self.batch_size,
            },
            "stage2": {"reranker": self.reranker, "n": self.n, "blend": self.blend},
        }


def option_group(cls: type, param: str, names: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Give a command the options of ``cls`` (a dataclass whose fields are ``Annotated``
    typer options; all of them, or the ``names`` given) and call it with
    ``param=cls(...)`` instead: the options are declared once, in ``cls``."""
    declared = {f.name: f for f in fields(cls)}
    hints = get_type_hints(cls, include_extras=True)
    chosen = names or tuple(declared)

    def default(name: str) -> Any:
        value = declared[name].default
        return None if value is MISSING else value

    def decorate(fn: F) -> F:
        fn_hints = get_type_hints(fn, include_extras=True)
        sig = inspect.signature(fn)
        params = [p.replace(annotation=fn_hints[p.name]) for p in sig.parameters.values()]
        params = [p for p in params if p.name != param]
        params += [
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=default(name), annotation=hints[name]
            )
            for name in chosen
        ]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            group = cls(**{name: kwargs.pop(name, default(name)) for name in chosen})
            return fn(*args, **{param: group}, **kwargs)

        wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        del wrapper.__wrapped__  # typer must read the new signature, not fn's
        return wrapper  # type: ignore[return-value]

    return decorate


def store_options(*names: str) -> Callable[[F], F]:
    """Give a command the store options (all five, or the ``names`` given) and call it
    with ``store=StoreFlags(...)`` instead."""
    return option_group(StoreFlags, "store", names)


def stage_options() -> Callable[[F], F]:
    """Give a command the stage options and call it with ``stages=StageFlags(...)``."""
    return option_group(StageFlags, "stages")
