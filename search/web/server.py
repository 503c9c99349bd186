"""``search serve``: a local result viewer over the index and the evaluation runs.

A threaded stdlib HTTP server that is safe to leave running: every connection has a
socket timeout (an idle client or a body shorter than its ``Content-Length`` costs one
thread for a few seconds, never the whole viewer), bodies are capped, concurrent
connections are bounded, and every API call must carry an allowed ``Host`` (no DNS
rebinding) and, when the browser sends one, a same-origin ``Origin`` (no cross-site
POST). Queries are JSON bodies only. Index work runs under one lock: the embedded
index is opened per query and closed after it, so `search index` can write between
queries (an edge shard admits one process at a time); models are built once and cached.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from retrieval.errors import SearchError, UsageError
from search.web.params import MAX_BODY, parse_json_body, query_arg
from search.web.viewer import Viewer

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
SOCKET_TIMEOUT = 10.0  # seconds a connection may stay silent
MAX_CONNECTIONS = 64
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
PAGE_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; form-action 'none'; base-uri 'none'"
)


def host_name(header: str) -> str:
    """The host part of a ``Host`` header or an origin's netloc, lower-cased."""
    host = header.strip().lower()
    if host.startswith("["):  # [::1]:8000
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def is_local(host: str) -> bool:
    """Whether a bind address only listens on this machine."""
    return host in LOCAL_NAMES or (is_ip(host) and ipaddress.ip_address(host).is_loopback)


class ViewerServer(ThreadingHTTPServer):
    """One thread per connection, at most ``MAX_CONNECTIONS`` at a time."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type, allowed_hosts: set[str]) -> None:
        self.allowed_hosts = allowed_hosts
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):  # full: drop, do not queue
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class Handler(BaseHTTPRequestHandler):
    """Routes: ``/`` (the page), ``GET /api/collections|runs|run|image``, ``POST /api/query``."""

    server: ViewerServer
    viewer: Viewer
    timeout = SOCKET_TIMEOUT  # StreamRequestHandler sets it on the socket
    protocol_version = "HTTP/1.0"

    def log_message(self, fmt: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), fmt % args)

    def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, value in {**SECURITY_HEADERS, **(headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data: Any, status: int = 200) -> None:
        body = json.dumps(data, ensure_ascii=False).encode()
        self._send(status, body, "application/json; charset=utf-8")

    def _error(self, status: int, message: str) -> None:
        self._json({"error": message}, status)

    def _trusted(self) -> bool:
        """Host allow-list and same-origin check; answers 403 itself when they fail."""
        host = self.headers.get("Host", "")
        name = host_name(host)
        if not host or not (is_ip(name) or name in self.server.allowed_hosts):
            self._error(HTTPStatus.FORBIDDEN, f"host {name!r} not allowed (see --allow-host)")
            return False
        origin = self.headers.get("Origin")
        if origin is not None:
            try:
                parsed = urlparse(origin)
            except ValueError:  # "http://[" and the like
                parsed = urlparse("")
            if parsed.scheme != "http" or parsed.netloc.lower() != host.strip().lower():
                self._error(HTTPStatus.FORBIDDEN, "cross-origin request refused")
                return False
        if self.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            self._error(HTTPStatus.FORBIDDEN, "cross-site request refused")
            return False
        return True

    def _guard(self, fn: Any) -> None:
        try:
            fn()
        except UsageError as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
        except SearchError as exc:
            self._error(HTTPStatus.NOT_FOUND, str(exc))
        except (OSError, ValueError) as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
        except Exception as exc:  # keep serving; the log has the traceback
            log.exception("request failed")
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error: {type(exc).__name__}")

    def do_HEAD(self) -> None:  # noqa: N802 (http.server's name)
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        if not self._trusted():
            return
        try:
            url = urlparse(self.path)
            args = parse_qs(url.query, max_num_fields=20)
        except ValueError:
            self._error(HTTPStatus.BAD_REQUEST, "bad URL")
            return
        viewer = self.viewer
        if url.path in ("/", "/index.html"):
            page = (STATIC / "index.html").read_bytes()
            self._send(200, page, "text/html; charset=utf-8", {"Content-Security-Policy": PAGE_CSP})
        elif url.path == "/api/collections":
            self._guard(lambda: self._json(viewer.collections()))
        elif url.path == "/api/runs":
            self._guard(lambda: self._json(viewer.run_list()))
        elif url.path == "/api/run":
            self._guard(lambda: self._json(viewer.run(query_arg(args, "path"))))
        elif url.path == "/api/image":
            self._guard(lambda: self._send(200, *viewer.image(query_arg(args, "ref"))))
        else:
            self._error(HTTPStatus.NOT_FOUND, "not found")

    def do_POST(self) -> None:  # noqa: N802
        if not self._trusted():
            return
        if self.path.split("?", 1)[0] != "/api/query":
            self._error(HTTPStatus.NOT_FOUND, "not found")
            return
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the query as application/json")
            return
        length = self.headers.get("Content-Length", "")
        if not length.isdigit() or len(length) > 12:
            self._error(HTTPStatus.LENGTH_REQUIRED, "a Content-Length is required")
            return
        if int(length) > MAX_BODY:
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request too large")
            return
        raw = self.rfile.read(int(length))  # a short body times out after SOCKET_TIMEOUT
        if len(raw) < int(length):
            self.close_connection = True
            return
        self._guard(lambda: self._json(self.viewer.query(parse_json_body(raw))))


def serve(
    cfg: Any,
    runs_root: Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    allow_hosts: tuple[str, ...] = (),
) -> ViewerServer:
    """A ready HTTP server (call ``serve_forever``); port 0 picks a free port.

    ``Host`` headers must name an IP address, ``localhost``, the bound host, or one
    of ``allow_hosts``; binding other than to loopback logs a warning."""
    if not is_local(host):
        log.warning(
            "the viewer listens on %s: anyone who can reach this machine can query the index "
            "and see its images; bind to 127.0.0.1 unless you mean it",
            host or "all interfaces",
        )
    allowed = set(LOCAL_NAMES) | {h.lower() for h in allow_hosts}
    if host and not is_ip(host):
        allowed.add(host.lower())
    handler = type("BoundHandler", (Handler,), {"viewer": Viewer(cfg, runs_root)})
    return ViewerServer((host, port), handler, allowed)
