"""``search review``: a thin command over ``search.match.review.start_review``, then the
match studio on the folder it wrote (``search.web.server.serve_run``, as ``search serve
--run`` serves it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from retrieval.checks import MAX_HITS
from retrieval.errors import SearchError
from search.cli.common import check_out, handle_errors, out, progress_bars
from search.cli.options import Collection, Encoders, Format, Port, StoreFlags, store_options

app = typer.Typer()


@app.command("review")
@handle_errors
@store_options()
def review_cmd(
    dataset: Annotated[str, typer.Argument(help="A catalogue (file or Shopee folder/zip).")],
    out_dir: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Review folder: labels, run files and matcher.json (reopened if it exists).",
        ),
    ],
    collection: Collection = None,
    encoder: Encoders = None,
    fmt: Format = None,
    batch: Annotated[
        int, typer.Option("--batch", min=1, max=10_000, help="Labels between two model fits.")
    ] = 20,
    k: Annotated[
        int, typer.Option("--k", min=1, max=MAX_HITS, help="Candidates per listing and vector.")
    ] = 20,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve/--no-serve",
            help="Open the studio on the folder; --no-serve prints the next pairs and exits "
            "(append verdicts to DIR/labels.jsonl and run it again).",
        ),
    ] = True,
    show: Annotated[
        int, typer.Option("--show", min=0, max=10_000, help="Pairs printed with --no-serve.")
    ] = 20,
    port: Port = 8000,
    *,
    store: StoreFlags,
) -> None:
    """Label an unlabelled catalogue's candidate pairs; a pair model learns from them."""
    from search.match.review import start_review

    check_out(out_dir)
    cfg = store.load(stage1={"encoders": encoder or None})
    with progress_bars() as progress:
        queue = start_review(
            cfg, dataset, out_dir, collection=collection, fmt=fmt, batch=batch, k=k,
            progress=progress,
        )  # fmt: skip
    p = queue.progress()
    f1 = "none yet" if p["estimated_f1"] is None else f"{p['estimated_f1']:.3f}"
    matcher = out_dir / "matcher.json"
    out.print(
        f"{p['pairs']} candidate pairs, {p['labelled']} labelled ({p['match']} match, "
        f"{p['no_match']} no match); threshold {p['threshold']:.2f}, expected F1 {f1}; "
        f"matcher: {matcher if matcher.is_file() else 'after the first labels of both kinds'}",
        highlight=False,
    )
    if not serve:
        for item in queue.next(show):
            typer.echo(f"{item.a}\t{item.b}\t{item.score:.4f}\t{item.reason}")
        return
    from search.web.server import serve_run

    try:
        server = serve_run(out_dir, "127.0.0.1", port)
    except OSError as exc:
        raise SearchError(
            f"cannot listen on port {port}: {exc.strerror or exc}; try --port 0"
        ) from exc
    out.print(
        f"studio at http://127.0.0.1:{server.server_address[1]}/  (Ctrl+C stops)", highlight=False
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
