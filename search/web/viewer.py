"""What the viewer's routes call: queries, collections, runs, images.

An image is served only when a recent answer listed it *and* it lies inside the image
roots of the dataset that answer came from (see ``search.web.images``).
"""

from __future__ import annotations

import logging
import tempfile
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from retrieval.atomic import write_bytes
from retrieval.errors import SearchError
from search.indexing import connect, list_collections
from search.query import query
from search.web.images import ImageRefused, ImageRoots, image_response
from search.web.models import ViewerModels
from search.web.params import parse_query
from search.web.runs import RunBrowser, find_runs

log = logging.getLogger(__name__)
MAX_LISTED = 200_000


class Viewer:
    """Queries, collections, runs and images for one config and one runs folder."""

    def __init__(self, cfg: Any, runs_root: Path, models: ViewerModels | None = None) -> None:
        self.cfg = cfg
        self.models = models if models is not None else ViewerModels()
        self.runs = RunBrowser(runs_root)
        self.images: set[str] = set()  # image refs a recent answer listed, inside a root
        self.index_lock = threading.Lock()  # one index user at a time (edge: one opener)
        self.lock = threading.Lock()  # guards ``images``
        self._roots: dict[str, ImageRoots] = {}

    def _allow(self, refs: list[str | None], roots: ImageRoots) -> None:
        with self.lock:
            if len(self.images) > MAX_LISTED:
                self.images.clear()
            self.images.update(r for r in refs if r and roots.contains(r))

    def collections(self) -> list[dict[str, Any]]:
        with self.index_lock:
            return list_collections(self.cfg)

    def _collection_roots(self, name: str) -> ImageRoots:
        """The image roots of the dataset a collection was indexed from (cached)."""
        if name not in self._roots:
            roots = ImageRoots()
            index = connect(self.cfg)
            try:
                info = index.info(name)
            finally:
                index.close()
            if info is not None:
                roots.add_dataset(info.meta.get("source"))
            self._roots[name] = roots
        return self._roots[name]

    def query(self, body: dict[str, Any]) -> dict[str, Any]:
        """Run one query: text, optional base64 image, collection, vector, k, n, reranker."""
        params = parse_query(body)
        cfg = self.cfg
        if params.vector:
            cfg = replace(cfg, stage1=replace(cfg.stage1, vector=params.vector))
        with tempfile.TemporaryDirectory(prefix="viewer-") as tmp:
            image_path = None
            if params.image is not None:
                image_path = str(Path(tmp) / "query.img")
                write_bytes(image_path, params.image)
            with self.index_lock:
                result = query(
                    cfg,
                    params.text,
                    image=image_path,
                    collection=params.collection,
                    top_k=params.n,
                    reranker=params.reranker,
                    k=params.k,
                    models=self.models,
                )
                roots = self._collection_roots(result.collection)
        answer = result.to_json(params.text, None)
        paths = {h.id: h.payload.get("image_path") for h in result.hits}
        paths.update({c.id: c.product.image_path for c in result.stage2 or []})
        for row in answer.get("stage2", []):
            row["image_path"] = paths.get(row["id"])
        self._allow([h.get("image_path") for h in answer["hits"] + answer.get("stage2", [])], roots)
        return answer

    def run_list(self) -> list[dict[str, Any]]:
        return find_runs(self.runs.root)

    def run(self, path: str) -> dict[str, Any]:
        data = self.runs.load(path)
        roots = ImageRoots()
        roots.add_dataset(data["settings"].get("dataset_path"))
        refs: list[str | None] = []
        for q in data["queries"]:
            refs.append(q["image"])
            for key in ("stage1", "stage2", "relevant"):
                refs.extend(i["image"] for i in q[key])
        self._allow(refs, roots)
        return data

    def image(self, ref: str) -> tuple[bytes, str]:
        """An image's bytes and content type; refused unless listed and inside a root."""
        with self.lock:
            listed = ref in self.images
        if not listed:
            raise ImageRefused("image not listed by a recent answer")
        try:
            return image_response(ref)
        except SearchError:
            log.warning("refused to serve %s: not a decodable image", ref)
            raise
