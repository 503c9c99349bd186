"""What every command module shares besides its options (``search.cli.options``):
the consoles, user-caused errors printed as one line with their exit code, rich progress
bars, and the check of an ``--out`` folder before any work.

Command modules import this module; it imports none of them.
"""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from retrieval.errors import SearchError, UsageError
from retrieval.types import ProgressFactory

out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def check_out(path: Path | None, flag: str = "--out") -> None:
    """Refuse, before any work, an output folder that cannot be made: a path naming an
    existing file (or under one), or under a folder this user cannot write to."""
    if path is None:
        return
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} is a file, not a folder: name a folder")
    parent = path
    while not parent.exists():
        if parent.is_symlink():
            raise UsageError(f"{flag} {path}: {parent} is a broken link")
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{flag} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: {parent} is not writable; pick another folder")


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
        except OSError as exc:  # a full disk or a read-only folder met outside our checks
            message = os_error_line(exc)
            if message is None:
                raise
            err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def os_error_line(exc: OSError) -> str | None:
    """One line for the OS errors a user's machine causes (full disk, no permission, read-
    only file system); None for the others, which stay tracebacks (they are our bugs)."""
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"disk full{where}: free some space and re-run the same command"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{exc.strerror}{where}: pick a writable folder (--data-dir, --out)"
    return None


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
