"""Talking to a real viewer in tests: images made in memory, a catalogue naming hostile
"images", and a raw HTTP helper that can set any header (Host, Origin, Content-Length)."""

from __future__ import annotations

import http.client
import io
import json
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
    host, port, _ = site
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
