"""Errors a user can cause: the CLI prints them as one line and exits non-zero."""

from __future__ import annotations


class SearchError(Exception):
    """A fault with a clear fix; the CLI prints the message and exits with ``exit_code``."""

    exit_code = 1


class UsageError(SearchError):
    """Bad names, flags or input formats (exit code 2)."""

    exit_code = 2


class MissingExtraError(SearchError):
    """An optional heavy stack is not installed."""

    def __init__(self, extra: str, package: str) -> None:
        super().__init__(
            f"{package} is not installed: pip install '.[{extra}]' (or product-search[{extra}])"
        )
        self.extra = extra


def unknown_name(kind: str, name: str, known: list[str] | tuple[str, ...]) -> UsageError:
    """The error for an unknown registry name, listing the known ones."""
    return UsageError(f"unknown {kind} {name!r}; known: {', '.join(sorted(known))}")
