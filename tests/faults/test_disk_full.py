"""Issue 10, item 5: a full disk is a one-line error before or during indexing, never a
"Bus error" (Qdrant Edge maps its files: writing into a mapping on a full disk is SIGBUS),
and the run resumes once there is room."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import namedtuple

import pytest
from helpers.viewer import one_line_error
from typer.testing import CliRunner

from retrieval.index import open_index
from retrieval.index import space as space_mod
from retrieval.index.edge import EdgeIndex
from retrieval.index.space import DiskFullError
from retrieval.retriever import Retriever
from retrieval.types import Product
from search.cli import app

Usage = namedtuple("Usage", "total used free")
GB = 2**30


def catalog(tmp_path, n=60):
    path = tmp_path / "c.jsonl"
    path.write_text(
        "".join(json.dumps({"id": f"p{i}", "title": f"item {i}"}) + "\n" for i in range(n))
    )
    return path


def fake_free(monkeypatch, free):
    """Make the disk report ``free()`` bytes free (a callable, re-read on every check)."""
    monkeypatch.setattr(space_mod.shutil, "disk_usage", lambda p: Usage(GB, GB - free(), free()))


def test_no_room_for_a_new_collection_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    fake_free(monkeypatch, lambda: 10 * 2**20)
    home = tmp_path / "home"
    res = CliRunner().invoke(
        app, ["index", str(catalog(tmp_path)), "-e", "sparse", "--data-dir", str(home)]
    )
    assert "not enough disk space" in one_line_error(res, 1)
    assert not (home / "edge" / "c").exists()


def test_disk_filling_during_a_run_stops_it_and_a_rerun_resumes(tmp_path, monkeypatch):
    free = {"bytes": 10 * GB}
    fake_free(monkeypatch, lambda: free["bytes"])
    products = [Product(id=f"p{i}", title=f"item {i}") for i in range(60)]

    def fill(n):  # the disk fills after the second batch
        if n and free["bytes"] > 0:
            free["calls"] = free.get("calls", 0) + 1
            if free["calls"] == 2:
                free["bytes"] = 1 * 2**20

    index = open_index("edge", data_dir=tmp_path)
    retriever = Retriever.from_specs(["sparse"], index, "c")
    with pytest.raises(DiskFullError, match="re-run"):
        retriever.index_dataset(products, "d", batch_size=20, progress=fill)
    assert index.info("c").points == 40  # two batches stored, the third refused
    free["bytes"] = 10 * GB
    report = retriever.index_dataset(products, "d", batch_size=20)
    assert report.skipped_existing == 40 and report.written == 20
    assert index.info("c").points == 60
    index.close()


def test_enospc_from_the_engine_is_one_line(tmp_path, monkeypatch):
    index = EdgeIndex(tmp_path)
    retriever = Retriever.from_specs(["sparse"], index, "c")
    retriever.index_dataset([Product(id="a", title="x")], "d")
    shard = index._shard("c")

    class FullShard:
        def __getattr__(self, name):
            return getattr(shard, name)

        def update(self, op):
            raise Exception("Service internal error: No space left on device (os error 28)")

    index._shards["c"] = FullShard()
    with pytest.raises(DiskFullError, match="disk full"):
        retriever.index_dataset([Product(id="b", title="y")], "d")
    index._shards["c"] = shard
    index.close()


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("mount") is None, reason="needs root to mount a tmpfs"
)
def test_a_real_tiny_tmpfs_gives_one_line_not_a_bus_error(tmp_path):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        env = {**os.environ, "SEARCH_HOME": str(mnt)}
        cmd = [sys.executable, "-m", "search", "index", str(catalog(tmp_path)), "-e", "sparse"]
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 1, (res.returncode, res.stderr)  # not 135 (SIGBUS)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and "not enough disk space" in lines[0]
    finally:
        subprocess.run(["umount", str(mnt)])
