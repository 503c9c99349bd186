"""`search index` on a Shopee-layout set with corrupt and missing images: every listing
is indexed from what it has, the bad images are counted and listed in the report."""

from __future__ import annotations

import json
import sys

from typer.testing import CliRunner

from retrieval.data.synth import synthesize
from retrieval.index import open_index
from search.cli import app


def test_bad_images_are_reported_and_listings_still_indexed(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("SEARCH_HOME", str(home))
    data = synthesize(tmp_path / "synth", groups=12, seed=3, image_size=64, corrupt=2, missing=1)
    rows = (data / "train.csv").read_text().strip().splitlines()[1:]
    res = CliRunner().invoke(app, ["index", str(data), "-e", "sparse", "-e", "phash"])
    assert res.exit_code == 0, res.output
    assert "3 with unreadable images" in res.output

    report = json.loads((home / "reports" / "synth-index-report.json").read_text())
    assert report["failures"] == 3 and report["written"] == len(rows)
    reasons = " ".join(report["failed_items"].values())
    assert "corrupt" in reasons or "cannot identify" in reasons
    index = open_index("edge", data_dir=home)
    assert index.info("synth").points == len(rows)  # nothing skipped: titles still indexed
    index.close()


def test_missing_extra_is_one_line_naming_the_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "open_clip", None)  # import open_clip -> ImportError
    catalog = tmp_path / "c.jsonl"
    catalog.write_text(json.dumps({"id": "1", "title": "x"}))
    res = CliRunner().invoke(app, ["index", str(catalog), "-e", "clip"])
    assert res.exit_code == 1
    assert "pip install '.[clip]'" in res.output
    assert "Traceback" not in res.output
