"""``search serve``: a local result viewer over the index and the evaluation runs, or
(``--run``) the match studio over one match run folder.

The ASGI app of ``search.web.app`` served by uvicorn on one asyncio loop, so an idle or
slow client costs a task, never a thread, and a normal request answers beside hundreds
of them. What uvicorn leaves open is closed here (``DeadlineProtocol``): a request must
arrive whole within ``request_timeout`` seconds of the connection opening or of the
previous answer (plus a second per MiB its ``Content-Length`` announces, so a large
upload on a slow link still fits), or the connection is dropped; so is a connection that
never sends a byte. A malformed request is one JSON error line (a bad ``Content-Length``
411, headers past ``MAX_HEADER_BYTES`` 431). It listens on 127.0.0.1 unless told
otherwise (anything else logs a warning).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from pathlib import Path
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from search.web.app import create_app
from search.web.guard import LOCAL_NAMES, MAX_HEADER_BYTES, is_ip, is_local
from search.web.models import ViewerModels
from search.web.params import MAX_BODY
from search.web.studio import Studio
from search.web.studio_app import create_studio_app
from search.web.viewer import Viewer

log = logging.getLogger(__name__)
REQUEST_TIMEOUT = 10.0  # seconds for a whole request to arrive
BODY_RATE = 1024 * 1024  # bytes per second a body may take on top of the deadline
KEEP_ALIVE = 5  # seconds an idle keep-alive connection stays open
MAX_CONNECTIONS = 1000  # open connections; past it, requests are 503


class DeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a whole-request deadline and JSON protocol errors."""

    request_timeout = REQUEST_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._extended = False  # the deadline already counts this request's body
        self._protocol_error: h11.RemoteProtocolError | None = None
        next_event = self.conn.next_event

        def remember_error() -> Any:  # what h11 disliked, for send_400_response
            try:
                return next_event()
            except h11.RemoteProtocolError as exc:
                self._protocol_error = exc
                raise

        self.conn.next_event = remember_error  # type: ignore[method-assign]

    def _arm(self, seconds: float | None = None) -> None:
        self._disarm()
        self._extended = False
        self._deadline = self.loop.call_later(seconds or self.request_timeout, self._expire)

    def _extend_for_body(self) -> None:
        """Once the headers are in: the deadline plus the time the announced body may
        take (at most ``MAX_BODY`` worth: a larger one is refused, not read)."""
        length = next((v for k, v in self.headers if k == b"content-length"), b"0")
        if length.isdigit() and int(length) and self._deadline is not None:
            left = max(self._deadline.when() - self.loop.time(), 0.0)
            self._arm(left + min(int(length), MAX_BODY) / BODY_RATE)
        self._extended = True

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()  # the app, if it waits for the body, sees a disconnect

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and self.conn.their_state is h11.IDLE:
            self._arm()  # the first byte of the next request on a kept-alive connection
        super().data_received(data)
        if self.conn.their_state is h11.DONE:
            self._disarm()  # all of it is here; the app may take its time
        elif self.conn.their_state is h11.SEND_BODY and not self._extended:
            self._extend_for_body()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm()

    def send_400_response(self, msg: str) -> None:
        exc = self._protocol_error
        status, message = 400, "malformed HTTP request"
        if exc is not None:
            status = exc.error_status_hint or 400
            text = str(exc)
            if "Content-Length" in text:
                status, message = 411, "a Content-Length is required"
            elif status == 431:
                message = "request headers too large"
            elif text:
                message = f"malformed HTTP request: {text}"
        body = json.dumps({"error": message}).encode()
        headers = [
            (b"content-type", b"application/json; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        try:
            for event in (
                h11.Response(status_code=status, headers=headers),
                h11.Data(data=body),
                h11.EndOfMessage(),
            ):
                self.transport.write(self.conn.send(event))
        except h11.LocalProtocolError:  # h11 is past answering on this connection
            pass
        self.transport.close()


class ViewerServer:
    """uvicorn on a socket bound at construction (port 0 picks a free port); call
    ``serve_forever`` in one thread and ``shutdown`` from another."""

    def __init__(
        self, app: Any, sock: socket.socket, request_timeout: float = REQUEST_TIMEOUT
    ) -> None:
        self.socket = sock
        self.server_address = sock.getsockname()[:2]
        protocol = type("Protocol", (DeadlineProtocol,), {"request_timeout": request_timeout})
        config = uvicorn.Config(
            app,
            http=protocol,
            loop="asyncio",
            lifespan="off",
            log_config=None,
            server_header=False,
            timeout_keep_alive=KEEP_ALIVE,
            timeout_graceful_shutdown=2,
            h11_max_incomplete_event_size=MAX_HEADER_BYTES,
            limit_concurrency=MAX_CONNECTIONS,
        )
        self.uvicorn = uvicorn.Server(config)
        self.app = app
        self._done = threading.Event()

    @property
    def viewer(self) -> Viewer:
        return self.app.state.viewer

    @property
    def studio(self) -> Studio:
        return self.app.state.studio

    def serve_forever(self) -> None:
        """Serve until ``shutdown`` (or Ctrl+C in the main thread)."""
        try:
            self.uvicorn.run(sockets=[self.socket])
        finally:
            self._done.set()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Ask the server to stop and wait (up to ``timeout`` s) until it has."""
        self.uvicorn.should_exit = True
        self._done.wait(timeout)

    def server_close(self) -> None:
        self.socket.close()


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port``; raises OSError as ``bind`` does."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def listen(host: str, port: int, allow_hosts: tuple[str, ...], what: str) -> tuple:
    """The bound socket and the allowed ``Host`` names; binding other than to loopback
    logs a warning that anyone reaching the machine can see ``what``."""
    if not is_local(host):
        log.warning(
            "the viewer listens on %s: anyone who can reach this machine can %s; "
            "bind to 127.0.0.1 unless you mean it",
            host or "all interfaces",
            what,
        )
    allowed = set(LOCAL_NAMES) | {h.lower() for h in allow_hosts}
    if host and not is_ip(host):
        allowed.add(host.lower())
    try:
        sock = bind(host, port)
    except socket.gaierror as exc:
        raise OSError(exc.errno, exc.strerror) from exc
    return sock, frozenset(allowed)


def serve(
    cfg: Any,
    runs_root: Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    allow_hosts: tuple[str, ...] = (),
    models_dirs: tuple[Path, ...] = (),
    request_timeout: float = REQUEST_TIMEOUT,
) -> ViewerServer:
    """A ready server (call ``serve_forever``); port 0 picks a free port.

    ``Host`` headers must name an IP address, ``localhost``, the bound host, or one of
    ``allow_hosts``; local models load only from ``models_dirs``; binding other than to
    loopback logs a warning."""
    sock, allowed = listen(host, port, allow_hosts, "query the index and see its images")
    viewer = Viewer(cfg, runs_root, ViewerModels(models_dirs))
    return ViewerServer(create_app(viewer, allowed), sock, request_timeout)


def serve_run(
    run_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    allow_hosts: tuple[str, ...] = (),
    request_timeout: float = REQUEST_TIMEOUT,
) -> ViewerServer:
    """A ready match studio over one match run or review folder, read before it listens
    (a folder that is not one raises its one-line ``SearchError``)."""
    studio = Studio(run_dir).load()
    sock, allowed = listen(host, port, allow_hosts, "see and label this run")
    return ViewerServer(create_studio_app(studio, allowed), sock, request_timeout)
