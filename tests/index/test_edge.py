"""Edge-only behaviour: persistence, the single-process lock, int8 quantization."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from retrieval.encoders.base import VectorSpec, l2_normalize
from retrieval.errors import SearchError
from retrieval.index import IndexConfig, PointBatch, SearchRequest, open_index, point_id


def _load(idx, n=50, dim=16, seed=1):
    vecs = l2_normalize(np.random.default_rng(seed).normal(size=(n, dim)))
    idx.create("c", [VectorSpec("v", dim)], {"encoders": ["e"]})
    idx.upsert(
        "c",
        PointBatch(
            [point_id("d", str(i)) for i in range(n)],
            {"v": list(vecs)},
            [{"id": str(i)} for i in range(n)],
        ),
    )
    idx.optimize("c")
    return vecs


def test_reopen_keeps_points_and_meta(tmp_path):
    idx = open_index("edge", data_dir=tmp_path)
    vecs = _load(idx)
    idx.close()
    again = open_index("edge", data_dir=tmp_path)
    assert again.info("c").points == 50
    assert again.search("c", [SearchRequest({"v": vecs[7]}, "v", 1)])[0][0].id == "7"
    again.close()


def test_second_process_gets_a_clear_error(tmp_path):
    idx = open_index("edge", data_dir=tmp_path)
    _load(idx)
    code = (
        "import sys\n"
        "from retrieval.index import open_index\n"
        "from retrieval.errors import SearchError\n"
        f"idx = open_index('edge', data_dir={str(tmp_path)!r})\n"
        "try:\n    idx.info('c')\nexcept SearchError as e:\n    print(e); sys.exit(3)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 3, res.stderr
    assert "open in another process" in res.stdout
    idx.close()


def test_int8_quantization_still_finds_exact_neighbour(tmp_path):
    idx = open_index("edge", data_dir=tmp_path, config=IndexConfig(quantization="int8"))
    vecs = _load(idx, n=300)
    hits = idx.search("c", [SearchRequest({"v": vecs[i]}, "v", 1) for i in range(0, 300, 37)])
    assert [h[0].id for h in hits] == [str(i) for i in range(0, 300, 37)]
    idx.close()


def test_unknown_collection_is_usage_error(tmp_path):
    idx = open_index("edge", data_dir=tmp_path)
    with pytest.raises(SearchError, match="no collection"):
        idx.search("missing", [SearchRequest({"v": np.ones(4)}, "v", 1)])
