"""``search serve``: a local result viewer over the index and the evaluation runs.

Stdlib HTTP server, one request at a time: the embedded index is opened for each
query and closed after it, so `search index` can write between queries (an edge
shard admits one process at a time); models are built once and cached. Images are
served only when a query or run answer has just listed them.
"""

from __future__ import annotations

import base64
import json
import logging
import mimetypes
import tempfile
import threading
from dataclasses import replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from retrieval.data.images import read_image_bytes
from retrieval.errors import SearchError
from search.config import AppConfig
from search.indexing import list_collections
from search.query import ModelCache, query
from search.web.runs import RunBrowser, find_runs

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
MAX_UPLOAD = 20 * 1024 * 1024


class Viewer:
    """What the handler calls: queries, collections, runs, images."""

    def __init__(self, cfg: AppConfig, runs_root: Path) -> None:
        self.cfg = cfg
        self.models = ModelCache()
        self.runs = RunBrowser(runs_root)
        self.images: set[str] = set()  # image refs a recent answer listed
        self.lock = threading.Lock()

    def _allow(self, refs: list[str | None]) -> None:
        if len(self.images) > 200_000:
            self.images.clear()
        self.images.update(r for r in refs if r)

    def collections(self) -> list[dict[str, Any]]:
        return list_collections(self.cfg)

    def query(self, body: dict[str, Any]) -> dict[str, Any]:
        """Run one query: text, optional base64 image, collection, vector, k, reranker."""
        stage1 = dict(self.cfg.stage1.__dict__)
        if body.get("vector"):
            stage1["vector"] = body["vector"]
        cfg = replace(self.cfg, stage1=replace(self.cfg.stage1, **stage1))
        image_path = None
        tmp = None
        if body.get("image"):
            data = base64.b64decode(str(body["image"]).split(",")[-1])
            if len(data) > MAX_UPLOAD:
                raise SearchError("image larger than 20 MB")
            tmp = tempfile.NamedTemporaryFile(suffix=".img", delete=False)
            tmp.write(data)
            tmp.close()
            image_path = tmp.name
        try:
            result = query(
                cfg,
                str(body.get("text") or ""),
                image=image_path,
                collection=body.get("collection") or None,
                top_k=int(body.get("n") or 10),
                reranker=body.get("reranker") or None,
                k=int(body.get("k") or 50),
                models=self.models,
            )
        finally:
            if tmp is not None:
                Path(tmp.name).unlink(missing_ok=True)
        answer = result.to_json(str(body.get("text") or ""), None)
        paths = {h.id: h.payload.get("image_path") for h in result.hits}
        for row in answer.get("stage2", []):
            row["image_path"] = paths.get(row["id"]) or _image_of(result, row["id"])
        self._allow([h.get("image_path") for h in answer["hits"] + answer.get("stage2", [])])
        return answer

    def run_list(self) -> list[dict[str, Any]]:
        return find_runs(self.runs.root)

    def run(self, path: str) -> dict[str, Any]:
        data = self.runs.load(path)
        refs: list[str | None] = []
        for q in data["queries"]:
            refs.append(q["image"])
            for key in ("stage1", "stage2", "relevant"):
                refs.extend(i["image"] for i in q[key])
        self._allow(refs)
        return data

    def image(self, ref: str) -> bytes:
        if ref not in self.images:
            raise SearchError("image not listed by a recent answer")
        return read_image_bytes(ref)


def _image_of(result: Any, pid: str) -> str | None:
    for c in result.stage2 or []:
        if c.id == pid:
            return c.product.image_path
    return None


def make_handler(viewer: Viewer) -> type[BaseHTTPRequestHandler]:
    """The request handler class bound to one viewer."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args: Any) -> None:
            log.info("%s %s", self.address_string(), fmt % args)

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, data: Any, status: int = 200) -> None:
            self._send(status, json.dumps(data, ensure_ascii=False).encode(), "application/json")

        def _guard(self, fn: Any) -> None:
            try:
                with viewer.lock:
                    fn()
            except SearchError as exc:
                status = HTTPStatus.BAD_REQUEST if exc.exit_code == 2 else HTTPStatus.NOT_FOUND
                self._json({"error": str(exc)}, status)
            except (OSError, ValueError) as exc:
                self._json({"error": str(exc)}, HTTPStatus.BAD_REQUEST)
            except Exception as exc:  # keep serving; the log has the traceback
                log.exception("request failed")
                self._json({"error": f"internal error: {exc}"}, HTTPStatus.INTERNAL_SERVER_ERROR)

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            url = urlparse(self.path)
            args = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path in ("/", "/index.html"):
                self._send(200, (STATIC / "index.html").read_bytes(), "text/html; charset=utf-8")
            elif url.path == "/api/collections":
                self._guard(lambda: self._json(viewer.collections()))
            elif url.path == "/api/runs":
                self._guard(lambda: self._json(viewer.run_list()))
            elif url.path == "/api/run":
                self._guard(lambda: self._json(viewer.run(args.get("path", ""))))
            elif url.path == "/api/image":
                ref = args.get("ref", "")
                ctype = mimetypes.guess_type(ref.split("::")[-1])[0] or "image/jpeg"
                self._guard(lambda: self._send(200, viewer.image(ref), ctype))
            else:
                self._json({"error": "not found"}, HTTPStatus.NOT_FOUND)

        def do_POST(self) -> None:  # noqa: N802
            if urlparse(self.path).path != "/api/query":
                self._json({"error": "not found"}, HTTPStatus.NOT_FOUND)
                return
            size = int(self.headers.get("Content-Length") or 0)
            if size > MAX_UPLOAD * 2:
                self._json({"error": "request too large"}, HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
                return
            try:
                body = json.loads(self.rfile.read(size) or b"{}")
            except ValueError:
                self._json({"error": "body is not JSON"}, HTTPStatus.BAD_REQUEST)
                return
            self._guard(lambda: self._json(viewer.query(body)))

    return Handler


def serve(cfg: AppConfig, runs_root: Path, host: str = "127.0.0.1", port: int = 8000) -> HTTPServer:
    """A ready HTTP server (call ``serve_forever``); port 0 picks a free port."""
    return HTTPServer((host, port), make_handler(Viewer(cfg, runs_root)))
