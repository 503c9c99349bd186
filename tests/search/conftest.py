"""A tiny query/gallery set in a temp folder: lexical vectors only, so it runs in seconds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

GALLERY = [
    ("g1", "samsung galaxy a52 128gb black"),
    ("g2", "samsung galaxy a52 256gb white"),
    ("g3", "xiaomi redmi note 10 64gb grey"),
    ("g4", "xiaomi redmi note 10 pro 128gb"),
    ("g5", "apple iphone 12 mini 64gb blue"),
    ("g6", "apple iphone 12 pro max 256gb"),
    ("g7", "nike air zoom pegasus 38 size 42"),
    ("g8", "adidas ultraboost 21 running shoe"),
    ("g9", "sony wh-1000xm4 wireless headphones"),
    ("g10", "bose quietcomfort 35 ii headphones"),
]
QUERIES = [
    # (id, title, matches, split)
    ("q1", "galaxy a52 128 gb samsung", ["g1"], "test"),
    ("q2", "redmi note 10 64gb xiaomi grey", ["g3"], "test"),
    ("q3", "iphone 12 mini blue", ["g5"], "test"),
    ("q4", "headphones wireless noise cancelling", ["g9", "g10"], "test"),  # two matches
    ("q5", "nike pegasus 38 air zoom", ["g7", "gone"], "test"),  # one match not in the gallery
    ("q6", "a widget nobody sells", ["missing"], "test"),  # no match in the gallery
    ("q7", "", ["g8"], "test"),  # no title: lacks the sparse vector
    ("v1", "samsung a52 256gb white", ["g2"], "valid"),
    ("v2", "iphone 12 pro max", ["g6"], "valid"),
    ("v3", "adidas ultraboost shoe", ["g8"], "valid"),
    ("v4", "redmi note 10 pro", ["g4"], "valid"),
]


def write_query_gallery(root: Path, queries=QUERIES) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with (root / "gallery.jsonl").open("w") as fh:
        for gid, title in GALLERY:
            fh.write(json.dumps({"id": gid, "title": title, "image": None}) + "\n")
    with (root / "queries.jsonl").open("w") as fh:
        for qid, title, matches, split in queries:
            record = {"id": qid, "title": title, "image": None, "matches": matches, "split": split}
            fh.write(json.dumps(record) + "\n")
    return root


@pytest.fixture
def tiny_set(tmp_path) -> Path:
    return write_query_gallery(tmp_path / "tiny")


@pytest.fixture
def make_set():
    """``make_set(root, queries)``: a query/gallery set with the tiny gallery."""
    return write_query_gallery
