"""Issue 10, items 9 and 14: bytes that are not UTF-8 in any input file, an unterminated
CSV quote, a repeated id: one line naming the file and line (exit 2), or a correct count."""

from __future__ import annotations

import json
import zipfile

import pytest
from helpers.viewer import one_line_error
from typer.testing import CliRunner

from retrieval.data import open_dataset
from search.cli import app

LATIN1 = "caf\xe9 cr\xe8me".encode("latin-1")  # 0xe9 is not UTF-8 on its own
SHOPEE_HEADER = b"posting_id,image,image_phash,title,label_group\n"


def info(path):
    return CliRunner().invoke(app, ["data", "info", str(path)])


def info_error(path, content: bytes):
    """Write ``content`` to ``path``; `search data info` on it must fail in one line."""
    path.write_bytes(content)
    return path, one_line_error(info(path))


def jsonl(*lines: bytes) -> bytes:
    return b"".join(line + b"\n" for line in lines)


GOOD = json.dumps({"id": "a", "title": "ok", "group": "g"}).encode()
BAD = b'{"id": "b", "title": "' + LATIN1 + b'", "group": "g"}'


@pytest.mark.parametrize(
    ("name", "content", "line"),
    [
        ("c.jsonl", jsonl(GOOD, BAD), 2),
        ("c.json", b"[" + GOOD + b",\n" + BAD + b"]", 2),
        ("c.csv", b"id,title,group\na,ok,g\nb," + LATIN1 + b",g\n", 3),
    ],
)
def test_catalogue_with_non_utf8_bytes_is_one_line(tmp_path, name, content, line):
    path, error = info_error(tmp_path / name, content)
    assert f"{path}:{line}: not UTF-8" in error


def test_shopee_csv_with_non_utf8_bytes_folder_and_zip(tmp_path):
    folder = tmp_path / "shopee"
    folder.mkdir()
    csv = SHOPEE_HEADER + b"p1,a.jpg,0,ok,g1\np2,b.jpg,0," + LATIN1 + b",g1\n"
    (folder / "train.csv").write_bytes(csv)
    assert ":3: not UTF-8" in one_line_error(info(folder))
    assert ":3: not UTF-8" in one_line_error(info(folder / "train.csv"))
    archive = tmp_path / "shopee.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("train.csv", csv)
    assert "train.csv:3: not UTF-8" in one_line_error(info(archive))


def test_query_gallery_with_non_utf8_bytes(tmp_path):
    root = tmp_path / "qg"
    root.mkdir()
    (root / "gallery.jsonl").write_bytes(jsonl(GOOD))
    (root / "queries.jsonl").write_bytes(jsonl(BAD))
    assert "queries.jsonl:1: not UTF-8" in one_line_error(info(root))


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("c.csv", b'id,title,group\na,"unterminated,g\nb,second row,g\n'),
        ("train.csv", SHOPEE_HEADER + b'p1,a.jpg,0,"unterminated,g1\np2,b.jpg,0,ok,g1\n'),
    ],
)
def test_unterminated_csv_quote_is_an_error_not_a_swallowed_file(tmp_path, name, content):
    path, error = info_error(tmp_path / name, content)
    assert f"{path}:2: bad CSV" in error


def test_repeated_ids_are_counted(tmp_path):
    catalog = tmp_path / "c.jsonl"
    catalog.write_bytes(jsonl(GOOD, GOOD, json.dumps({"id": "c", "title": "x"}).encode()))
    ds = open_dataset(catalog)
    assert ds.describe()["products"] == 2 and ds.skipped_duplicates == 1
    shopee = tmp_path / "s"
    shopee.mkdir()
    (shopee / "train.csv").write_bytes(SHOPEE_HEADER + b"p1,a.jpg,0,x,g\np1,a.jpg,0,x,g\n")
    assert open_dataset(shopee).describe()["duplicate_ids"] == 1
