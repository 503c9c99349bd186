"""What every command module shares: consoles, error handling, progress bars, and the
store options (``--config --data-dir --backend --qdrant-url --qdrant-api-key``) declared
once and turned into the run's config by ``StoreFlags.config``.

Command modules import this module; it imports none of them.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_type_hints

import typer
from rich.console import Console
from rich.markup import escape

from retrieval.errors import SearchError

out = Console()
err = Console(stderr=True)
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
ConfigFile = Annotated[
    Path | None,
    typer.Option("--config", help="TOML config (sections store, index, stage1, stage2, eval)."),
]
Collection = Annotated[str | None, typer.Option("--collection", "-c", help="Collection name.")]
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
Format = Annotated[
    str | None,
    typer.Option("--format", help="Force the dataset format: shopee, query-gallery, catalog."),
]


def comma_list(value: str | None) -> list[str] | None:
    """``a,b`` -> ``["a", "b"]``; None stays None (the config keeps its value)."""
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def handle_errors(fn: F) -> F:
    """Print user-caused errors as one line and exit with their code, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SearchError as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("interrupted; re-run the same command to resume")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


ProgressFactory = Callable[[str, "int | None"], Callable[[int], None]]


@contextmanager
def progress_bars() -> Iterator[ProgressFactory]:
    """Rich progress bars on stderr: ``factory(description, total)`` -> per-batch tick."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:

        def factory(description: str, total: int | None) -> Callable[[int], None]:
            task = bar.add_task(description, total=total or None)
            return lambda n: bar.advance(task, n)

        yield factory


@dataclass(frozen=True)
class StoreFlags:
    """The store options of one command line, and the config they select."""

    config: Path | None = None
    data_dir: Path | None = None
    backend: str | None = None
    qdrant_url: str | None = None
    qdrant_api_key: str | None = None

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

        return load_config(self.config, store=self.store, **sections)


_STORE_OPTIONS = {
    "config": ConfigFile,
    "data_dir": DataDir,
    "backend": Backend,
    "qdrant_url": Url,
    "qdrant_api_key": ApiKey,
}


def store_options(*names: str) -> Callable[[F], F]:
    """Give a command the store options (all five, or the ``names`` given) and call it
    with ``store=StoreFlags(...)`` instead: the options are declared here only."""
    chosen = names or tuple(_STORE_OPTIONS)

    def decorate(fn: F) -> F:
        hints = get_type_hints(fn, include_extras=True)
        sig = inspect.signature(fn)
        params = [p.replace(annotation=hints[p.name]) for p in sig.parameters.values()]
        params = [p for p in params if p.name != "store"]
        params += [
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=_STORE_OPTIONS[name]
            )
            for name in chosen
        ]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            flags = StoreFlags(**{name: kwargs.pop(name, None) for name in chosen})
            return fn(*args, store=flags, **kwargs)

        wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        del wrapper.__wrapped__  # typer must read the new signature, not fn's
        return wrapper  # type: ignore[return-value]

    return decorate
