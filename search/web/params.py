"""The viewer's API parameters, checked at the boundary: a wrong type, size or range is a
UsageError (HTTP 400) naming the field, never a 500 from deep inside a query."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from retrieval.errors import UsageError

MAX_UPLOAD = 20 * 1024 * 1024  # decoded image bytes
MAX_BODY = MAX_UPLOAD * 4 // 3 + 64 * 1024  # base64 of the largest image plus the fields
MAX_TEXT = 10_000
MAX_NAME = 512
MAX_N = 1_000
MAX_K = 10_000
MAX_DEPTH = 32  # nesting of JSON arrays and objects a body may hold


@dataclass(frozen=True)
class QueryParams:
    """One viewer query, validated."""

    text: str = ""
    image: bytes | None = None
    collection: str | None = None
    vector: str | None = None
    reranker: str | None = None
    n: int = 10
    k: int = 50


def json_depth(raw: bytes, limit: int = MAX_DEPTH) -> int:
    """How deep arrays and objects nest in a JSON text (brackets inside strings do not
    count); stops counting past ``limit``. One pass over the bytes, no recursion."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def parse_json_body(raw: bytes) -> dict[str, Any]:
    """A request body that must be one JSON object nested at most ``MAX_DEPTH`` deep."""
    if not raw.strip():
        return {}
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and json_depth(raw) > MAX_DEPTH:
        raise UsageError(f"body nests deeper than {MAX_DEPTH} levels")
    try:
        body = json.loads(raw.decode("utf-8"))
    except RecursionError as exc:  # unreachable after the depth check; kept as a guard
        raise UsageError(f"body nests deeper than {MAX_DEPTH} levels") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise UsageError("body is not JSON") from exc
    if not isinstance(body, dict):
        raise UsageError("body must be a JSON object")
    return body


def text_param(body: dict[str, Any], key: str, limit: int = MAX_NAME) -> str | None:
    """An optional string field; empty means absent."""
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise UsageError(f"{key} must be a string")
    if len(value) > limit:
        raise UsageError(f"{key} longer than {limit} characters")
    if "\x00" in value:
        raise UsageError(f"{key} holds a NUL character")
    return value


def int_param(body: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    """An optional integer field (a JSON number or a decimal string) within [lo, hi]."""
    value = body.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise UsageError(f"{key} must be an integer")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        text = value.strip()
        if not (text.lstrip("+-").isdigit() and text.isascii() and len(text) <= 12):
            raise UsageError(f"{key} must be an integer from {lo} to {hi}")
        value = int(text)
    if not isinstance(value, int) or not lo <= value <= hi:
        raise UsageError(f"{key} must be an integer from {lo} to {hi}")
    return value


def image_param(body: dict[str, Any]) -> bytes | None:
    """The uploaded image: base64, optionally as a ``data:`` URL."""
    value = body.get("image")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise UsageError("image must be a base64 string")
    if len(value) > MAX_BODY:
        raise UsageError("image larger than 20 MB")
    try:
        data = base64.b64decode(value.split(",")[-1], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UsageError("image is not valid base64") from exc
    if not data:
        return None
    if len(data) > MAX_UPLOAD:
        raise UsageError("image larger than 20 MB")
    return data


def parse_query(body: dict[str, Any]) -> QueryParams:
    """The fields of ``POST /api/query``; a bad one is a UsageError naming it."""
    params = QueryParams(
        text=text_param(body, "text", MAX_TEXT) or "",
        image=image_param(body),
        collection=text_param(body, "collection"),
        vector=text_param(body, "vector"),
        reranker=text_param(body, "reranker", 2_000),
        n=int_param(body, "n", 10, 1, MAX_N),
        k=int_param(body, "k", 50, 1, MAX_K),
    )
    if not params.text.strip() and params.image is None:
        raise UsageError("give a query text, an image, or both")
    return params


def query_arg(args: dict[str, list[str]], key: str, limit: int = 4096) -> str:
    """One URL query argument (the last if repeated); absent is empty."""
    values = args.get(key) or [""]
    value = values[-1]
    if len(value) > limit or "\x00" in value:
        raise UsageError(f"bad {key} parameter")
    return value
