"""The ``search`` command line: the root app and its command groups.

Each module of this package owns one ``typer.Typer()`` with its commands; the root
merges or nests them here. A command is thin: parse, build the config, call one
function of the application, print. Heavy stacks (torch, models, qdrant) load inside
those functions, so ``search --help`` answers at once. Nothing outside this package
imports it.
"""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer

from search.cli import (
    ablate,
    data,
    evaluate,
    explain,
    index,
    match,
    mine,
    query,
    review,
    serve,
    train,
)
from search.cli.common import err

app = typer.Typer(help="Two-stage product matching search on Qdrant.", no_args_is_help=True)
for group in (
    index.app, query.app, evaluate.app, match.app, explain.app, review.app, ablate.app,
    mine.app, serve.app,
):  # fmt: skip
    app.add_typer(group)  # no name: their commands sit at the top level
app.add_typer(data.app, name="data")
app.add_typer(train.app, name="train")


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
    max_image_mb: Annotated[
        float | None,
        typer.Option(
            "--max-image-mb",
            min=0.001,
            max=2**20 - 1,
            envvar="SEARCH_MAX_IMAGE_MB",
            help="Largest image file or zip member read, in MB (default 50).",
        ),
    ] = None,
) -> None:
    """Two-stage product matching: index catalogues into Qdrant, query, rerank, evaluate."""
    if max_image_mb is not None:  # every reader (and worker process) reads the cap from here
        os.environ["SEARCH_MAX_IMAGE_MB"] = repr(max_image_mb)
    if not verbose:  # model-loading bars of transformers/hub are noise beside our own bars
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False)],
    )


__all__ = ["app"]
