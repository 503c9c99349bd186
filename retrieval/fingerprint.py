"""What a stored point was made from: a short hash of the payload it stores and of the
image file its encoders read, kept in the payload as ``fp``.

``search index`` compares it with the listing as the source has it now: a listing whose
title, fields, group or image changed is encoded again, one gone from the source is
removed, and ``search eval`` / ``search match`` refuse a collection that no longer matches
its source. An image counts as changed when its file's size or modification time does
(for a zip member: the archive's), which costs a ``stat``, not a read.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from retrieval.types import Product

ZIP_SEP = "::"


def image_stamp(ref: str | None) -> str:
    """Size and modification time of the file behind an image reference ("" for none,
    "missing" when it cannot be read)."""
    if not ref:
        return ""
    path = ref.split(ZIP_SEP, 1)[0] if ZIP_SEP in ref else ref
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"


def fingerprint(product: Product, dataset: str) -> str:
    """The fingerprint of a listing as it would be stored in ``dataset`` now."""
    return stamp(product.payload(dataset), image_stamp(product.image_path))


def stamp(payload: dict[str, Any], image: str) -> str:
    blob = json.dumps([payload, image], sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:20]
