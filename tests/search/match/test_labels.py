"""Labels: whole-line appends from several processes, and every bad line named by file:line."""

from __future__ import annotations

import json
import multiprocessing

import pytest

from retrieval.errors import SearchError
from search.match.labels import Label, append_label, label_pairs, read_labels

AT = "2026-12-06T08:00:00+00:00"


def _writer(path: str, worker: int, count: int) -> None:
    for i in range(count):
        verdict = "match" if i % 3 else "no_match"
        append_label(path, Label(f"w{worker}-{i}", f"w{worker}-{i + 1}", verdict, AT, "bench"))


def test_two_processes_appending_at_once_lose_nothing(tmp_path):
    path = tmp_path / "labels.jsonl"
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_writer, args=(str(path), w, 300)) for w in range(2)]
    for proc in workers:
        proc.start()
    for proc in workers:
        proc.join(30)
        assert proc.exitcode == 0
    lines = path.read_text().splitlines()
    assert len(lines) == 600 and all(json.loads(line)["source"] == "bench" for line in lines)
    labels = read_labels(path)
    assert len(labels) == 600
    assert labels[("w1-3", "w1-4")].verdict == "no_match"


def test_latest_verdict_wins_and_a_revision_is_no_contradiction(tmp_path):
    path = tmp_path / "labels.jsonl"
    append_label(path, Label("b", "a", "match", AT, "studio"))
    append_label(path, Label("a", "b", "match", AT, "studio"))  # same verdict again: fine
    append_label(path, Label.now("a", "b", "no_match", "studio", revises=True))
    append_label(path, Label.now("c", "a", "skip", "review"))
    labels = read_labels(path, known_ids={"a", "b", "c"})
    assert set(labels) == {("a", "b"), ("a", "c")}
    assert labels[("a", "b")].verdict == "no_match" and labels[("a", "b")].revises
    pairs, y = label_pairs(labels)
    assert pairs == [("a", "b")] and y.tolist() == [0]  # the skip is dropped
    none, y_none = label_pairs([])
    assert none == [] and y_none.shape == (0,)


def test_a_missing_file_holds_no_labels(tmp_path):
    assert read_labels(tmp_path / "none.jsonl") == {}


def test_a_torn_last_line_does_not_swallow_the_next_label(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text('{"a": "x", "b": "y", "verd')  # a crash mid-line, by another writer
    append_label(path, Label("a", "b", "match", AT, "studio"))
    assert path.read_text().splitlines()[1].startswith('{"a": "a"')
    with pytest.raises(SearchError, match=r"labels.jsonl:1: not a JSON line"):
        read_labels(path)


def _line(**fields) -> str:
    base = {"a": "a", "b": "b", "verdict": "match", "at": AT, "source": "studio"}
    return json.dumps({**base, **fields})


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["not json"], r":1: not a JSON line"),
        (["[1, 2]"], r":1: a label is a JSON object, not list"),
        ([_line(), '{"a": "a"}'], r":2: missing 'b', 'verdict', 'at', 'source'"),
        ([_line(verdict="yes")], r":1: verdict 'yes' is not one of match, no_match, skip"),
        ([_line(b="a")], r":1: a listing paired with itself \('a'\)"),
        ([_line(a=3)], r":1: 'a' must be a non-empty string, not 3"),
        ([_line(at="yesterday")], r":1: 'at' 'yesterday' is not an ISO 8601 time"),
        ([_line(revises="yes")], r":1: 'revises' must be true or false"),
        ([_line(note="x")], r":1: unknown key\(s\) 'note'"),
        (["", _line(a="zz")], r":2: unknown listing id 'zz'"),
        (
            [_line(), _line(), _line(a="b", b="a", verdict="no_match")],
            r":3: 'no_match' for 'b'-'a' contradicts 'match' on line 2",
        ),
    ],
)
def test_a_bad_line_is_one_error_naming_file_and_line(tmp_path, lines, message):
    path = tmp_path / "labels.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SearchError, match=r"labels\.jsonl" + message) as err:
        read_labels(path, known_ids={"a", "b"})
    assert "\n" not in str(err.value)


def test_a_bad_label_is_refused_before_it_is_written(tmp_path):
    path = tmp_path / "labels.jsonl"
    with pytest.raises(SearchError, match="paired with itself"):
        append_label(path, Label("a", "a", "match", AT, "studio"))
    with pytest.raises(SearchError, match="verdict 'maybe'"):
        append_label(path, Label("a", "b", "maybe", AT, "studio"))
    assert not path.exists()
    path.write_bytes(b"\xff\xfe\n")
    with pytest.raises(SearchError, match=r"labels\.jsonl:1: not UTF-8 text"):
        read_labels(path)
