"""``search serve``: the result viewer in the browser."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from retrieval.errors import SearchError
from search.cli.common import handle_errors, out
from search.cli.options import Port, StoreFlags, store_options

app = typer.Typer()


@app.command("serve")
@handle_errors
@store_options()
def serve_cmd(
    runs: Annotated[
        Path, typer.Option("--runs", help="Folder searched for evaluation runs.")
    ] = Path("runs"),
    run: Annotated[
        Path | None,
        typer.Option(
            "--run",
            help="A match run folder (search match --out) or review folder to open in the "
            "match studio instead of the viewer.",
        ),
    ] = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; beyond 127.0.0.1 it warns.")
    ] = "127.0.0.1",
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host",
            help="A host name the browser may use besides localhost and IP addresses "
            "(repeat for several; anything else is refused against DNS rebinding).",
        ),
    ] = None,
    port: Port = 8000,
    models_dir: Annotated[
        list[Path] | None,
        typer.Option(
            "--models-dir",
            help="A folder the page may load local reranker models from (repeat for several; "
            "without one, only hub names load).",
        ),
    ] = None,
    *,
    store: StoreFlags,
) -> None:
    """Browse queries and evaluation runs in a web page; with --run, the match studio.

    Viewer: both stages with images, a run's queries page by page.
    Studio (--run): a match run's groups, why a pair matched, a queue of pairs to label.
    """
    from search.web.server import serve, serve_run

    dirs = tuple(models_dir or ())
    missing = [str(d) for d in dirs if not d.is_dir()]
    if missing:
        raise SearchError(f"--models-dir {missing[0]} is not a folder")
    hosts = tuple(allow_host or ())
    try:
        if run is not None:
            server = serve_run(run, host, port, allow_hosts=hosts)
        else:
            server = serve(store.load(), runs, host, port, allow_hosts=hosts, models_dirs=dirs)
    except OSError as exc:  # port in use, host not local
        raise SearchError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; try --port 0"
        ) from exc
    what = "match studio" if run is not None else "viewer"
    out.print(
        f"{what} at http://{host}:{server.server_address[1]}/  (Ctrl+C stops)", highlight=False
    )
    try:
        server.serve_forever()  # uvicorn stops on Ctrl+C / SIGTERM, then re-raises it
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
