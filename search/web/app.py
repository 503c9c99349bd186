"""The viewer as an ASGI app (Starlette): the page and the script it shares with the
studio's (``/common.js``), ``GET /api/collections|runs|run|image`` and ``POST /api/query``.

Every answer is JSON or an image; an error is one JSON line (``{"error": ...}``): a bad
parameter 400, something not there 404, a body that is not JSON 415, a body without a
length 411, a body too large 413. Blocking work (the index, models, files) runs in
Starlette's thread pool; the event loop only parses and routes, so a slow client costs
a task, not a thread.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from retrieval.errors import SearchError, UsageError
from search.web.guard import SecurityHeaders, TrustedClient
from search.web.params import MAX_BODY, parse_json_body, query_arg
from search.web.viewer import Viewer

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
MAX_FIELDS = 20  # URL query fields; more is a 400
PAGE_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; form-action 'none'; base-uri 'none'"
)


class Json(JSONResponse):
    media_type = "application/json; charset=utf-8"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False).encode()


def error(status: int, message: str) -> Response:
    return Json({"error": message}, status)


def url_args(request: Request) -> dict[str, list[str]]:
    """The URL's query arguments, at most ``MAX_FIELDS``; more is a UsageError."""
    try:
        query = request.scope["query_string"].decode("latin-1")
        return parse_qs(query, max_num_fields=MAX_FIELDS)
    except ValueError as exc:
        raise UsageError("bad URL") from exc


async def guarded(fn: Callable[[], Any]) -> Response:
    """Run ``fn`` in the thread pool and turn what it returns or raises into an answer."""
    try:
        result = await run_in_threadpool(fn)
    except UsageError as exc:
        return error(400, str(exc))
    except SearchError as exc:
        return error(404, str(exc))
    except (OSError, ValueError) as exc:
        return error(400, str(exc))
    except Exception as exc:  # keep serving; the log has the traceback
        log.exception("request failed")
        return error(500, f"internal error: {type(exc).__name__}")
    return result if isinstance(result, Response) else Json(result)


async def posted(
    request: Request, what: str, handle: Callable[[Any], Any], limit: int = MAX_BODY
) -> Response:
    """The answer to a request with a JSON body: ``handle`` of the parsed body, run as
    ``guarded`` runs it; or the error answer: not JSON 415, no length 411, too large 413
    (the server's request deadline bounds a slow body)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        return error(415, f"send {what} as application/json")
    length = request.headers.get("content-length", "")
    if not length.isdigit() or len(length) > 12:
        return error(411, "a Content-Length is required")
    if int(length) > limit:
        return error(413, "request too large")
    try:
        raw = await request.body()
    except ClientDisconnect:
        return Response(status_code=400)  # nobody is listening any more
    return await guarded(lambda: handle(parse_json_body(raw)))


def create_app(viewer: Viewer, allowed_hosts: frozenset[str]) -> Starlette:
    """The viewer's ASGI app: routes behind the host/origin check and security headers."""

    async def page(request: Request) -> Response:
        return page_response(await run_in_threadpool((STATIC / "index.html").read_bytes))

    async def collections(request: Request) -> Response:
        return await guarded(viewer.collections)

    async def runs(request: Request) -> Response:
        return await guarded(viewer.run_list)

    async def run(request: Request) -> Response:
        return await guarded(lambda: viewer.run(query_arg(url_args(request), "path")))

    async def query(request: Request) -> Response:
        return await posted(request, "the query", viewer.query)

    routes = [
        Route("/api/collections", collections, methods=["GET"]),
        Route("/api/runs", runs, methods=["GET"]),
        Route("/api/run", run, methods=["GET"]),
        Route("/api/query", query, methods=["POST"]),
    ]
    app = guarded_app(page, viewer.image, routes, allowed_hosts)
    app.state.viewer = viewer
    return app


def page_response(body: bytes) -> Response:
    """An HTML page under the pages' Content-Security-Policy."""
    return Response(
        body, media_type="text/html; charset=utf-8", headers={"Content-Security-Policy": PAGE_CSP}
    )


def guarded_app(
    page: Callable[[Request], Awaitable[Response]],
    images: Callable[[str], tuple[bytes, str]],
    routes: list[Route],
    allowed_hosts: frozenset[str],
) -> Starlette:
    """A Starlette app behind the host/origin check and the security headers, whose 404s
    and other HTTP errors are one JSON line: ``page`` at ``/`` and ``/index.html``, the
    script both pages load (``static/common.js``) at ``/common.js``, ``GET
    /api/image?ref=`` answered by ``images(ref)`` (bytes, content type), and ``routes``."""

    async def image(request: Request) -> Response:
        def answer() -> Response:
            data, ctype = images(query_arg(url_args(request), "ref"))
            return Response(data, media_type=ctype)

        return await guarded(answer)

    async def script(request: Request) -> Response:
        body = await run_in_threadpool((STATIC / "common.js").read_bytes)
        return Response(body, media_type="text/javascript; charset=utf-8")

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/index.html", page, methods=["GET"]),
        Route("/common.js", script, methods=["GET"]),
        Route("/api/image", image, methods=["GET"]),
        *routes,
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return error(404, "not found")

    async def http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 400)  # Starlette's HTTPException: 405 and the like
        return error(status, str(getattr(exc, "detail", "bad request")).lower())

    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(TrustedClient, allowed_hosts=allowed_hosts),
        ],
        exception_handlers={404: not_found, HTTPException: http_error},
    )
    app.router.redirect_slashes = False
    return app
