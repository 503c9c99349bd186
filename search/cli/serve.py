"""``search serve``: the result viewer in the browser."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from retrieval.errors import SearchError
from search.cli.common import StoreFlags, handle_errors, out, store_options

app = typer.Typer()


@app.command("serve")
@handle_errors
@store_options()
def serve_cmd(
    runs: Annotated[
        Path, typer.Option("--runs", help="Folder searched for evaluation runs.")
    ] = Path("runs"),
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="0 picks a free port.")
    ] = 8000,
    *,
    store: StoreFlags,
) -> None:
    """Browse queries (both stages, with images) and evaluation runs in a web page."""
    from search.web.server import serve

    cfg = store.load()
    try:
        server = serve(cfg, runs, host, port)
    except OSError as exc:  # port in use, host not local
        raise SearchError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; try --port 0"
        ) from exc
    out.print(
        f"viewer at http://{host}:{server.server_address[1]}/  (Ctrl+C stops)", highlight=False
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
