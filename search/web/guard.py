"""ASGI middleware of the viewer: who may call it, and the headers every answer carries.

``TrustedClient`` refuses headers past ``MAX_HEADER_BYTES`` (431; uvicorn's h11 limit
only holds for headers still arriving) and admits a request only with a ``Host`` that is an IP address or an
allowed name (no DNS rebinding) and, when the browser sends them, a same-origin
``Origin`` and ``Sec-Fetch-Site`` (no cross-site POST); ``SecurityHeaders`` adds
``nosniff``, no framing, no referrer and no caching to every answer, errors included.
"""

from __future__ import annotations

import ipaddress
import json
from urllib.parse import urlparse

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_HEADER_BYTES = 64 * 1024  # request target and headers
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


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


async def send_error(send: Send, status: int, message: str) -> None:
    """One JSON error line as a whole HTTP answer."""
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def refusal(headers: Headers, allowed_hosts: frozenset[str]) -> str | None:
    """Why a request with these headers is refused, or None when it is trusted."""
    host = headers.get("host", "")
    name = host_name(host)
    if not host or not (is_ip(name) or name in allowed_hosts):
        return f"host {name!r} not allowed (see --allow-host)"
    origin = headers.get("origin")
    if origin is not None:
        try:
            parsed = urlparse(origin)
        except ValueError:  # "http://[" and the like
            parsed = urlparse("")
        if parsed.scheme != "http" or parsed.netloc.lower() != host.strip().lower():
            return "cross-origin request refused"
    if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return "cross-site request refused"
    return None


class TrustedClient:
    """Answers 403 to a request whose Host, Origin or Sec-Fetch-Site is not trusted."""

    def __init__(self, app: ASGIApp, allowed_hosts: frozenset[str]) -> None:
        self.app = app
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = len(scope["raw_path"]) + len(scope["query_string"])
            size += sum(len(k) + len(v) + 4 for k, v in scope["headers"])
            if size > MAX_HEADER_BYTES:
                await send_error(send, 431, "request headers too large")
                return
            why = refusal(Headers(scope=scope), self.allowed_hosts)
            if why is not None:
                await send_error(send, 403, why)
                return
        await self.app(scope, receive, send)


class SecurityHeaders:
    """Adds ``SECURITY_HEADERS`` to every answer (a route may set its own CSP)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    headers.setdefault(key, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
