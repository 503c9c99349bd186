"""Issue 23, case 5: a catalogue edited in place. `search index` encodes again the listings
that changed (title, fields, image file) and removes the ones gone from the source, on the
embedded engine and on a real server; each point's ``fp`` says what it was made from."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from retrieval.encoders import build_encoder
from retrieval.index import open_index, point_id
from retrieval.types import Product
from search.config import load_config
from search.indexing import index_dataset

ROWS = [
    {"id": "a", "title": "samsung galaxy a52 128gb", "group": "g1"},
    {"id": "b", "title": "galaxy a52 samsung 128 gb", "group": "g1"},
    {"id": "c", "title": "xiaomi redmi note 10", "group": "g2"},
    {"id": "d", "title": "redmi note 10 xiaomi 64gb", "group": "g2"},
]


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(params=["edge", "server"])
def cfg(request, tmp_path):
    store = {"data_dir": tmp_path / "home"}
    if request.param == "server":
        store["url"] = request.getfixturevalue("qdrant_node").url
    return load_config(None, store=store, stage1={"encoders": ["sparse"], "batch_size": 2})


def stored(cfg, name, product_id):
    index = open_index(
        cfg.store.backend, data_dir=cfg.store.data_dir, url=cfg.store.url, config=cfg.index
    )
    try:
        pid = point_id("shop", product_id)
        return index.fetch(name, [pid]).get(pid), index.info(name).points
    finally:
        index.close()


def test_edited_listings_are_encoded_again_and_gone_ones_removed(tmp_path, cfg):
    name = f"stale-{cfg.store.backend}-{os.getpid()}"
    data = write(tmp_path / "shop.jsonl", ROWS)
    report, _ = index_dataset(cfg, str(data), collection=name, recreate=True)
    assert (report.written, report.changed, report.removed) == (4, 0, 0)

    edited = [dict(r) for r in ROWS[:3]]  # "d" is gone
    edited[2]["title"] = "apple iphone 12 mini blue"  # "c" is another product now
    write(data, edited)
    report, path = index_dataset(cfg, str(data), collection=name)
    assert (report.written, report.changed, report.skipped_existing) == (1, 1, 2)
    assert report.removed == 1
    assert json.loads(path.read_text())["changed"] == 1

    vectors, points = stored(cfg, name, "c")
    assert points == 3
    want = build_encoder("sparse").encode([Product("c", edited[2]["title"])]).vectors["sparse"][0]
    np.testing.assert_array_equal(vectors["sparse"].indices, want.indices)

    report, _ = index_dataset(cfg, str(data), collection=name)  # nothing changed since
    assert (report.written, report.changed, report.removed) == (0, 0, 0)


def test_a_changed_image_file_is_encoded_again(tmp_path):
    pytest.importorskip("imagehash")
    cfg = load_config(None, store={"data_dir": tmp_path / "home"}, stage1={"encoders": ["phash"]})
    image = tmp_path / "a.png"
    Image.new("RGB", (32, 32), (200, 10, 10)).save(image)
    data = write(tmp_path / "shop.jsonl", [{"id": "a", "title": "red", "image": str(image)}])
    index_dataset(cfg, str(data), collection="img")
    before, _ = stored(cfg, "img", "a")
    pixels = np.zeros((32, 32, 3), np.uint8)
    pixels[:, :16] = 255  # half white, half black: another hash
    Image.fromarray(pixels).save(image)
    os.utime(image, ns=(1, 1))  # a new size or time is what says the file changed
    report, _ = index_dataset(cfg, str(data), collection="img")
    assert (report.written, report.changed) == (1, 1)
    after, _ = stored(cfg, "img", "a")
    assert not np.array_equal(before["phash"], after["phash"])


def test_match_refreshes_a_collection_edited_since(tmp_path, monkeypatch):
    """`search match` on a catalogue edited since it was indexed says so, indexes what
    changed first, and matches the edited listing by its new title."""
    from typer.testing import CliRunner

    from search.cli import app

    monkeypatch.setenv("SEARCH_HOME", str(tmp_path / "home"))
    rows = [
        {"id": f"p{i}", "title": f"samsung galaxy phone a52 {i}", "group": "p"} for i in range(3)
    ]
    rows.append({"id": "x", "title": "nike running shoe 42", "group": "x"})
    data = write(tmp_path / "shop.jsonl", rows)
    runner = CliRunner()
    res = runner.invoke(app, ["index", str(data), "-e", "sparse", "-c", "shop"])
    assert res.exit_code == 0, res.output
    rows[-1]["title"] = "samsung galaxy phone a52 9"  # x now reads like the p listings
    write(data, rows)
    args = ["match", str(data), "-c", "shop", "--threshold", "sparse=0.5", "--out", tmp_path / "m"]
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    said = " ".join(res.output.split())  # rich wraps long lines
    assert "was stale (1 listings changed, 0 new, 0 gone since indexed)" in said
    lines = (tmp_path / "m" / "matches.jsonl").read_text().splitlines()
    matches = {json.loads(line)["id"]: json.loads(line)["matches"] for line in lines}
    assert {m["id"] for m in matches["x"]} == {"p0", "p1", "p2"}
