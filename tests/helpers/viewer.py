"""Talking to a real viewer in tests: images made in memory, a catalogue naming hostile
"images", a raw HTTP helper that can set any header (Host, Origin, Content-Length), a
server runner, and idle and slow-header clients for the load and deadline tests."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import socket
import threading
import time
from pathlib import Path

from PIL import Image


def png_bytes(color: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, "PNG")
    return buf.getvalue()


def jpeg_bytes(color: str = "blue") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, "JPEG")
    return buf.getvalue()


def hostile_catalog(root: Path) -> Path:
    """A catalogue whose rows name a good JPEG, a PNG called .jpg, an HTML page, an SVG,
    /etc/passwd and a real image outside the dataset folder."""
    data = root / "shop"
    (data / "img").mkdir(parents=True)
    (data / "img" / "good.jpg").write_bytes(jpeg_bytes())
    (data / "img" / "png-named.jpg").write_bytes(png_bytes())
    (data / "img" / "x.html").write_text("<script>alert(1)</script>")
    (data / "img" / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    outside = root / "outside.png"
    outside.write_bytes(png_bytes("green"))
    images = ["img/good.jpg", "img/png-named.jpg", "img/x.html", "img/logo.svg"]
    images += ["/etc/passwd", str(outside), "../outside.png"]
    rows = [
        {"id": f"p{i}", "title": f"red running shoe size {i}", "image": image, "group": "g"}
        for i, image in enumerate(images)
    ]
    catalog = data / "catalog.jsonl"
    catalog.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return catalog


def request(site, method, path, body=None, headers=None, timeout=30):
    """(status, headers, body) of one request; ``headers`` may override Host/Origin."""
    host, port = site[0], site[1]
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        all_headers = {"Host": f"127.0.0.1:{port}"}
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for key, value in all_headers.items():
            conn.putheader(key, value)
        if body is not None and "Content-Length" not in all_headers:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        res = conn.getresponse()
        return res.status, res.headers, res.read()  # headers: case-insensitive
    finally:
        conn.close()


def query(site, body, headers=None):
    """POST /api/query; returns (status, parsed JSON)."""
    status, _, raw = request(site, "POST", "/api/query", body, headers)
    return status, json.loads(raw)


def one_line_error(result, code: int = 2) -> str:
    """Assert a CLI result failed with ``code`` and printed one ``error:`` line; return it."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == code, result.output
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "Traceback" not in result.output
    return lines[0]


@contextlib.contextmanager
def running(server):
    """Serve ``server`` (``search.web.server.serve``) in a thread; yields (host, port)."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=15)


def open_sockets(host: str, port: int, n: int) -> list[socket.socket]:
    """``n`` connected TCP sockets that send nothing (idle clients)."""
    return [socket.create_connection((host, port), timeout=10) for _ in range(n)]


class SlowClients:
    """``n`` clients that send a request line, then one header line every ``interval``
    seconds and never finish their headers; one thread drives them all, for at most
    ``limit`` seconds. ``dropped`` counts the sockets the server closed."""

    def __init__(self, host: str, port: int, n: int, interval: float = 0.5, limit: float = 60):
        self.socks = open_sockets(host, port, n)
        self.alive = set(range(n))
        self.interval, self.limit = interval, limit
        self.stopped = threading.Event()
        self.lock = threading.Lock()
        for sock in self.socks:
            sock.sendall(f"GET /api/collections HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode())
            sock.setblocking(False)
        self.thread = threading.Thread(target=self._drive, daemon=True)
        self.thread.start()

    @property
    def dropped(self) -> int:
        with self.lock:
            return len(self.socks) - len(self.alive)

    def _drive(self) -> None:
        end = time.monotonic() + self.limit
        line = 0
        while not self.stopped.wait(self.interval) and time.monotonic() < end:
            line += 1
            with self.lock:
                for i in list(self.alive):
                    try:
                        if self.socks[i].recv(1) == b"":  # the server closed it
                            self.alive.discard(i)
                            continue
                    except BlockingIOError:
                        pass  # still open, nothing to read: as expected
                    except OSError:
                        self.alive.discard(i)
                        continue
                    try:
                        self.socks[i].send(f"X-Slow-{line}: y\r\n".encode())
                    except BlockingIOError:
                        pass
                    except OSError:  # reset by the server
                        self.alive.discard(i)

    def wait_dropped(self, timeout: float) -> int:
        """Wait until the server closed every socket, at most ``timeout`` s; the count."""
        end = time.monotonic() + timeout
        while self.dropped < len(self.socks) and time.monotonic() < end:
            time.sleep(0.2)
        return self.dropped

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)
        for sock in self.socks:
            sock.close()
