"""Ids that would break ``matches.csv`` are refused when the dataset is read (issue 23,
case 12): an id holding a carriage return was written unquoted, so the file read back
with more rows than listings; an id holding a space was indexed, though the ``matches``
column separates ids by spaces. Every reader (catalogue JSONL / CSV, Shopee CSV, query /
gallery) refuses an id with whitespace or a control character in one line naming the
file and the line.
"""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from retrieval.data import open_dataset
from retrieval.errors import UsageError
from search.cli import app

runner = CliRunner()

BAD = ["a b", "a\rb", "a\nb", "a\tb", "a\x00b", "a\u200bb", "a\u00a0b", "a\u2028b", "a\x1bb"]


def jsonl(path, ids):
    rows = [
        {"id": pid, "title": f"red shoe {i}", "group": f"g{i // 2}"} for i, pid in enumerate(ids)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("bad", BAD, ids=[repr(b) for b in BAD])
def test_a_catalogue_id_with_whitespace_or_control_is_one_line(tmp_path, bad):
    path = jsonl(tmp_path / "shop.jsonl", ["p0", "p1", bad, "p3"])
    with pytest.raises(UsageError) as err:
        list(open_dataset(str(path)).products())
    line = str(err.value)
    assert f"{path}:3:" in line and "\n" not in line and "\r" not in line, line


def test_a_catalogue_csv_names_the_line(tmp_path):
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerows([["id", "title", "group"], ["p0", "shoe", "g"], ["p 1", "shoe", "g"]])
    path = tmp_path / "shop.csv"
    path.write_text(buf.getvalue())
    with pytest.raises(UsageError, match=r"shop.csv:3: id 'p 1' holds whitespace"):
        list(open_dataset(str(path)).products())


def test_a_shopee_posting_id_names_the_line(tmp_path):
    (tmp_path / "train.csv").write_text(
        "posting_id,image,image_phash,title,label_group\n"
        "t0,a.jpg,,shoe,1\n"
        '"t\r1",b.jpg,,shoe,1\n'  # quoted: one record, on line 3
    )
    with pytest.raises(UsageError, match=r"train.csv:3: id 't\\r1' holds whitespace \(U\+000D\)"):
        list(open_dataset(str(tmp_path), format="shopee").products())


def test_query_gallery_ids_are_checked(tmp_path):
    (tmp_path / "gallery.jsonl").write_text(json.dumps({"id": "g 0", "title": "shoe"}) + "\n")
    (tmp_path / "queries.jsonl").write_text(json.dumps({"id": "q0", "title": "shoe"}) + "\n")
    with pytest.raises(UsageError, match=r"gallery.jsonl:1: id 'g 0' holds whitespace"):
        list(open_dataset(str(tmp_path), format="query-gallery").products())


def test_ids_trimmed_or_plain_still_read(tmp_path):
    path = jsonl(tmp_path / "shop.jsonl", [" p0", "p1 ", "p-2_x.y:ü", "p3"])
    assert [p.id for p in open_dataset(str(path)).products()] == ["p0", "p1", "p-2_x.y:ü", "p3"]


def test_search_match_refuses_before_writing_a_broken_csv(tmp_path, monkeypatch):
    monkeypatch.setenv("SEARCH_HOME", str(tmp_path / "home"))
    path = jsonl(tmp_path / "shop.jsonl", ["p0", "p1", "a\rb", "p3"])
    out = tmp_path / "o"
    res = runner.invoke(app, ["match", str(path), "-t", "sparse=0.3", "--out", str(out)])
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert f"{path.name}:3:" in res.output and not (out / "matches.csv").exists()
