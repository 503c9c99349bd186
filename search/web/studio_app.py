"""The match studio as an ASGI app: the page and its JSON routes over one run folder.

``GET /api/studio`` (summary), ``/api/groups?page=&q=&errors=``, ``/api/group?id=``,
``/api/histogram``, ``/api/pair?a=&b=``, ``/api/queue?n=``, ``/api/labels``,
``/api/image?ref=``, ``/api/refit`` (a cold start's background refit: running, done,
error); ``POST /api/labels`` saves one verdict. Behind the viewer's
host/origin middleware, so a label POSTed from another origin is refused (403). A run
folder the studio cannot read answers 400 with its one line, the page included.
"""

from __future__ import annotations

import html

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from retrieval.errors import SearchError
from search.web.app import STATIC, guarded, guarded_app, page_response, posted, url_args
from search.web.params import int_param, query_arg
from search.web.studio import Studio

MAX_LABEL_BODY = 4096


def arg_int(request: Request, key: str, default: int, lo: int, hi: int) -> int:
    return int_param({key: query_arg(url_args(request), key, 16)}, key, default, lo, hi)


def create_studio_app(studio: Studio, allowed_hosts: frozenset[str]) -> Starlette:
    """The studio's app over ``studio``'s run folder."""

    def page_html() -> Response:
        try:
            studio.load()
        except SearchError as exc:
            text = html.escape(str(exc))
            body = f"<!doctype html><title>match studio</title><p>error: {text}</p>"
            return Response(body, 400, media_type="text/html; charset=utf-8")
        return page_response((STATIC / "studio.html").read_bytes())

    async def page(request: Request) -> Response:
        return await run_in_threadpool(page_html)

    async def summary(request: Request) -> Response:
        return await guarded(studio.summary)

    async def groups(request: Request) -> Response:
        def answer() -> dict:
            args = url_args(request)
            page = arg_int(request, "page", 0, 0, 10**7)
            return studio.group_page(
                page, query_arg(args, "q", 512), query_arg(args, "errors") in ("1", "true")
            )

        return await guarded(answer)

    async def group(request: Request) -> Response:
        return await guarded(lambda: studio.group(arg_int(request, "id", 0, 0, 10**9)))

    async def histogram(request: Request) -> Response:
        return await guarded(studio.histogram)

    async def pair(request: Request) -> Response:
        def answer() -> dict:
            args = url_args(request)
            return studio.pair(query_arg(args, "a", 512), query_arg(args, "b", 512))

        return await guarded(answer)

    async def queue(request: Request) -> Response:
        return await guarded(lambda: studio.next_pairs(arg_int(request, "n", 5, 1, 50)))

    async def labels(request: Request) -> Response:
        if request.method == "GET":
            return await guarded(studio.label_list)
        return await posted(request, "the label", studio.label, MAX_LABEL_BODY)

    async def refit(request: Request) -> Response:
        return await guarded(studio.refit_state)

    routes = [
        Route("/api/studio", summary, methods=["GET"]),
        Route("/api/refit", refit, methods=["GET"]),
        Route("/api/groups", groups, methods=["GET"]),
        Route("/api/group", group, methods=["GET"]),
        Route("/api/histogram", histogram, methods=["GET"]),
        Route("/api/pair", pair, methods=["GET"]),
        Route("/api/queue", queue, methods=["GET"]),
        Route("/api/labels", labels, methods=["GET", "POST"]),
    ]
    app = guarded_app(page, studio.image, routes, allowed_hosts)
    app.state.studio = studio
    return app
