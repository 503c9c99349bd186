"""Failure messages that read the same in every run, and say the real reason (issue
23, case 16, the index report's and the matcher's part).

PIL's error for bytes it cannot identify names its buffer (``cannot identify image file
<_io.BytesIO object at 0x7f...>``), so two index reports of one catalogue differed; a
matcher whose ``vectors`` list is empty was refused as if every listing had "no title or
readable image".
"""

from __future__ import annotations

import json

from typer.testing import CliRunner

from search.cli import app
from search.match.matcher import Matcher
from search.match.rules import Rule

runner = CliRunner()


def catalogue(tmp_path):
    (tmp_path / "img").mkdir()
    rows = []
    for i in range(4):
        (tmp_path / "img" / f"{i}.jpg").write_bytes(b"not a jpeg " * (i + 1))
        rows.append(
            {
                "id": f"p{i}",
                "title": f"red shoe model x{i}",
                "group": f"g{i // 2}",
                "image": f"img/{i}.jpg",
            }
        )
    path = tmp_path / "shop.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def index(path, home):
    res = runner.invoke(
        app,
        ["index", str(path), "-e", "sparse", "-e", "phash", "-c", "shop", "--data-dir", str(home)],
    )
    assert res.exit_code == 0, res.output
    return json.loads((home / "reports" / "shop-index-report.json").read_text())


def test_two_index_reports_of_one_catalogue_list_the_same_failures(tmp_path):
    path = catalogue(tmp_path)
    first, second = index(path, tmp_path / "a"), index(path, tmp_path / "b")
    failures = first["failed_items"]
    assert sorted(failures) == ["p0", "p1", "p2", "p3"]
    assert failures == second["failed_items"]
    for reason in failures.values():
        assert " at 0x" not in reason and "not an image format PIL reads" in reason


def test_a_matcher_without_vectors_says_so(tmp_path):
    path = catalogue(tmp_path)
    home = ["--data-dir", str(tmp_path / "home"), "-c", "shop"]
    assert runner.invoke(app, ["index", str(path), "-e", "sparse", *home]).exit_code == 0
    matcher = Matcher(
        ["sparse"], ["sparse"], {"sparse": 1.0}, [Rule("x", {"sparse": 0.5}, "sparse")], "x"
    )
    data = matcher.to_json()
    data["vectors"] = []
    (tmp_path / "m.json").write_text(json.dumps(data))
    args = ["match", str(path), *home, "-m", str(tmp_path / "m.json"), "--out", str(tmp_path / "o")]
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "names no vectors" in res.output and "readable image" not in res.output
    assert "['sparse']" in res.output  # what the collection has
