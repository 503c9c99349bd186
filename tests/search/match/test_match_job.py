"""``search match``: outputs, no re-encoding, repeatable re-runs, bad input."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from retrieval.encoders.sparse import SparseEncoder
from retrieval.errors import UsageError
from search.cli import app
from search.match.job import RuleFlags, match_dataset
from search.match.matcher import Matcher
from search.match.rules import Rule

runner = CliRunner()


def _match(cfg, path, tmp_path, **kw):
    flags = kw.pop("flags", RuleFlags({"sparse": 0.7}, min2=0.3))
    return match_dataset(cfg, str(path), flags=flags, collection="shop", out=tmp_path / "m", **kw)


def test_matches_csv_is_a_submission_and_jsonl_says_why(indexed, sparse_cfg, tmp_path):
    res = _match(sparse_cfg, indexed, tmp_path)
    rows = list(csv.DictReader(res.csv.open()))
    assert len(rows) == res.listings == sum(1 for _ in indexed.open())
    for row in rows:
        assert row["matches"].split(" ")[0] == row["posting_id"]  # itself first
    details = [json.loads(line) for line in res.jsonl.open()]
    whys = {m["rule"] for d in details for m in d["matches"]}
    assert whys <= {"sparse", "min2"} and "sparse" in whys
    first = next(d for d in details if d["matches"])
    assert set(first["matches"][0]["scores"]) == {"sparse"}  # the scores the rule reads
    assert res.scores is not None and res.scores.f1 > 0.8  # reworded titles, clear groups
    # the same F1 per split: the whole catalogue's is their mean weighted by listings
    parts = res.split_scores
    assert set(parts) <= {"train", "valid", "test"} and sum(s.n for s in parts.values()) == (
        res.scores.n
    )
    mean = sum(s.f1 * s.n for s in parts.values()) / res.scores.n
    assert mean == pytest.approx(res.scores.f1)


def test_self_match_never_encodes_again(indexed, sparse_cfg, tmp_path, monkeypatch):
    def boom(*_a, **_k):
        raise AssertionError("a self-match must reuse the stored vectors")

    monkeypatch.setattr(SparseEncoder, "encode", boom)
    assert _match(sparse_cfg, indexed, tmp_path).pairs > 0


def test_one_open_index_per_job(indexed, sparse_cfg, tmp_path, monkeypatch):
    import search.collection

    real, opened = search.collection.connect, []
    monkeypatch.setattr(search.collection, "connect", lambda cfg: opened.append(1) or real(cfg))
    matcher = Matcher(
        ["sparse"], ["sparse"], {"sparse": 1.0}, [Rule("s", {"sparse": 0.7}, "sparse")], "s"
    )
    matcher.save(tmp_path / "m.json")
    res = match_dataset(
        sparse_cfg, str(indexed), matcher_path=tmp_path / "m.json", collection="shop",
        out=tmp_path / "m",
    )  # fmt: skip
    assert res.pairs > 0 and len(opened) == 1


def test_a_rerun_writes_the_same_files(indexed, sparse_cfg, tmp_path):
    first = _match(sparse_cfg, indexed, tmp_path)
    before = first.csv.read_bytes(), first.jsonl.read_bytes()
    second = _match(sparse_cfg, indexed, tmp_path, flags=RuleFlags({"sparse": 0.7}, min2=0.3))
    assert (second.csv.read_bytes(), second.jsonl.read_bytes()) == before
    assert not [p for p in second.out.iterdir() if p.name.endswith(".tmp")]


def test_groups_and_inb_rules_run_end_to_end(indexed, sparse_cfg, tmp_path):
    flags = RuleFlags({"sparse": 0.7, "mean": 0.7}, min2=0.3, groups="components", group_cap=4)
    res = _match(sparse_cfg, indexed, tmp_path, flags=flags)
    sizes = [len(r["matches"].split()) for r in csv.DictReader(res.csv.open())]
    assert max(sizes) <= 4
    res = _match(sparse_cfg, indexed, tmp_path, flags=RuleFlags({"sparse": 0.7}, inb=1))
    assert res.scores is not None and res.scores.f1 > 0.8


def test_a_listing_without_vectors_is_one_line(tmp_path, sparse_cfg):
    from search.indexing import index_dataset

    path = tmp_path / "c.jsonl"
    path.write_text('{"id": "a", "title": "red shoe", "group": "1"}\n{"id": "b", "title": ""}\n')
    index_dataset(sparse_cfg, str(path), collection="shop")
    with pytest.raises(UsageError, match="listing 'b' has no stored vector"):
        _match(sparse_cfg, path, tmp_path)


def test_cli_needs_a_rule_and_refuses_a_matcher_of_other_encoders(indexed, tmp_path):
    home = ["--data-dir", str(tmp_path / "home"), "--collection", "shop"]
    res = runner.invoke(app, ["match", str(indexed), *home])
    assert res.exit_code == 2 and "--matcher FILE" in res.output
    res = runner.invoke(
        app, ["match", str(indexed), *home, "-t", "sparse=0.5", "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 0, res.output
    assert "matches:" in res.output and (tmp_path / "o" / "matches.csv").exists()
    other = Matcher(["text"], ["text"], {"text": 1.0}, [Rule("x", {"text": 0.8}, "text")], "x")
    other.save(tmp_path / "m.json")
    res = runner.invoke(app, ["match", str(indexed), *home, "--matcher", str(tmp_path / "m.json")])
    assert res.exit_code == 2
    assert "tuned with encoders ['text']" in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
    (tmp_path / "bad.json").write_text("[1, 2]")
    res = runner.invoke(
        app, ["match", str(indexed), *home, "--matcher", str(tmp_path / "bad.json")]
    )
    assert res.exit_code == 2 and "not a matcher file" in res.output


def test_an_unlabelled_shopee_test_csv_is_matched(tmp_path):
    folder = tmp_path / "kaggle"
    folder.mkdir()
    rows = ["posting_id,image,image_phash,title"]
    for i, title in enumerate(["nike air zoom 42", "air zoom nike 42 new", "canon eos 90d body"]):
        rows.append(f"t{i},t{i}.jpg,,{title}")
    (folder / "test.csv").write_text("\n".join(rows) + "\n")
    home = ["--data-dir", str(tmp_path / "home"), "-e", "sparse"]
    out = tmp_path / "out"
    res = runner.invoke(
        app, ["match", str(folder / "test.csv"), *home, "-t", "sparse=0.5", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    got = {
        r["posting_id"]: r["matches"].split() for r in csv.DictReader((out / "matches.csv").open())
    }
    assert got == {"t0": ["t0", "t1"], "t1": ["t1", "t0"], "t2": ["t2"]}
    assert "F1" not in res.output  # nothing labelled to score


def test_the_unlabelled_test_csv_inside_a_shopee_zip_is_matched(tmp_path):
    import zipfile

    train = ["posting_id,image,image_phash,title,label_group"]
    train += [f"r{i},r{i}.jpg,,{t},g{i // 2}" for i, t in enumerate(["blue mug", "mug blue"])]
    test = ["posting_id,image,image_phash,title"]
    for i, title in enumerate(["nike air zoom 42", "air zoom nike 42 new", "canon eos 90d body"]):
        test.append(f"t{i},t{i}.jpg,,{title}")
    archive = tmp_path / "shopee.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("shopee/train.csv", "\n".join(train) + "\n")
        zf.writestr("shopee/test.csv", "\n".join(test) + "\n")
    home = ["--data-dir", str(tmp_path / "home"), "-e", "sparse", "-t", "sparse=0.5"]

    def matched(path: str, out: str) -> dict[str, list[str]]:
        res = runner.invoke(app, ["match", path, *home, "--out", str(tmp_path / out)])
        assert res.exit_code == 0, res.output
        rows = csv.DictReader((tmp_path / out / "matches.csv").open())
        return {r["posting_id"]: r["matches"].split() for r in rows}

    got = matched(f"{archive}::test.csv", "test")
    assert got == {"t0": ["t0", "t1"], "t1": ["t1", "t0"], "t2": ["t2"]}
    assert set(matched(str(archive), "train")) == {"r0", "r1"}  # the zip alone: train.csv
    res = runner.invoke(app, ["match", f"{archive}::nope.csv", *home])
    assert res.exit_code == 2 and "no nope.csv" in res.output
