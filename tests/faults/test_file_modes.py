"""Artifacts get the mode a plain ``open`` gives (issue 23, case 13): ``0o666`` less the
umask for a new file, the old file's mode for a replaced one. The atomic writer's
temporary file (``mkstemp``: 0600) used to be renamed with its own mode, so every
artifact was 0600 whatever the umask, and replacing a 0644 file made it 0600."""

from __future__ import annotations

import contextlib
import os
import stat

import pytest
from helpers.pair_examples import toy_examples

from retrieval.atomic import atomic_open, write_bytes, write_checked, write_json, write_text


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_a_new_artifact_gets_the_umasks_mode(tmp_path, mask, expected):
    with umask(mask):
        write_text(tmp_path / "a.txt", "a\n")
        write_bytes(tmp_path / "b.bin", b"b")
        write_json(tmp_path / "c.json", {"c": 1})
        write_checked(tmp_path / "d.txt", "d")
        with atomic_open(tmp_path / "sub" / "e.txt") as handle:
            handle.write("e")
    for name in ["a.txt", "b.bin", "c.json", "d.txt", "sub/e.txt"]:
        assert mode(tmp_path / name) == expected, name


@pytest.mark.parametrize("old, mask", [(0o644, 0o077), (0o600, 0o022), (0o640, 0o022)])
def test_a_replaced_artifact_keeps_its_mode(tmp_path, old, mask):
    path = tmp_path / "metrics.json"
    path.write_text("{}\n")
    os.chmod(path, old)
    with umask(mask):
        write_json(path, {"f1": 0.5})
    assert mode(path) == old and path.read_text() == '{\n  "f1": 0.5\n}\n'


def test_a_saved_model_and_its_sidecar_are_readable_by_the_group(tmp_path):
    pytest.importorskip("lightgbm")
    from rerank.pair_gbdt import sidecar_path
    from training.pair_gbdt import GbdtParams, fit_pair_gbdt

    model = fit_pair_gbdt(toy_examples(30, 0), toy_examples(10, 1), GbdtParams(num_boost_round=5))
    with umask(0o022):
        path = model.save(tmp_path / "model.txt")
    assert mode(path) == 0o644 and mode(sidecar_path(path)) == 0o644
