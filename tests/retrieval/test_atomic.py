from __future__ import annotations

import json

import pytest

from retrieval.atomic import atomic_open, write_json, write_text


def test_write_replaces_whole_file(tmp_path):
    path = tmp_path / "sub" / "metrics.json"
    write_json(path, {"a": 1})
    write_json(path, {"b": 2})
    assert json.loads(path.read_text()) == {"b": 2}
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]  # no temporary left


def test_failure_keeps_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "run.txt"
    write_text(path, "old\n")
    with pytest.raises(RuntimeError), atomic_open(path) as handle:
        handle.write("half of a new fi")
        raise RuntimeError("killed")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["run.txt"]


def test_rejects_read_and_append_modes(tmp_path):
    with pytest.raises(ValueError), atomic_open(tmp_path / "x", "a"):
        pass
