"""BGE-M3 through FlagEmbedding on a tiny random XLM-R saved with the ColBERT and sparse
heads: three vectors, a collection holding them on both back-ends, the hybrid query
that rescores with the multivector, and the checkpoint without heads."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.errors import UsageError
from retrieval.types import Product

pytest.importorskip("transformers")
try:  # FlagEmbedding imports only through the transformers-5 shim
    from retrieval.flag_compat import import_flag

    import_flag()
except ImportError:  # pragma: no cover
    pytest.skip("FlagEmbedding is not installed", allow_module_level=True)

from retrieval.encoders import build_encoder  # noqa: E402

TITLES = ["arla milk standard", "arla milk medium fat", "samsung galaxy a52 128gb black", ""]


@pytest.fixture(scope="module")
def m3_dir(tmp_path_factory):
    from helpers.tiny_xlmr import build_tiny_xlmr

    return build_tiny_xlmr(tmp_path_factory.mktemp("tiny-m3"))


@pytest.fixture(scope="module")
def m3(m3_dir):
    return build_encoder(f"bge-m3:{m3_dir},device=cpu")


def products() -> list[Product]:
    return [Product(f"p{i}", t, group=f"g{i}") for i, t in enumerate(TITLES)]


def test_three_vectors_of_the_right_kinds(m3):
    specs = {v.name: v for v in m3.vectors()}
    assert set(specs) == {"bge_dense", "bge_sparse", "bge_colbert"}
    assert specs["bge_dense"].size == 32 and not specs["bge_dense"].multivector
    assert specs["bge_sparse"].sparse and specs["bge_sparse"].distance == "dot"
    assert specs["bge_colbert"].multivector and specs["bge_colbert"].size == 32


def test_vectors_follow_the_m3_outputs(m3, m3_dir):
    from transformers import AutoTokenizer

    out = m3.encode(products()).vectors
    tok = AutoTokenizer.from_pretrained(m3_dir)
    assert all(out[name][3] is None for name in out)  # no title, no vectors
    dense = out["bge_dense"][0]
    assert np.linalg.norm(dense) == pytest.approx(1.0, abs=1e-4)
    ids = tok(TITLES[2])["input_ids"]  # <s> words </s>
    colbert = out["bge_colbert"][2]
    assert colbert.shape == (len(ids) - 1, 32)  # every token but CLS
    np.testing.assert_allclose(np.linalg.norm(colbert, axis=1), 1.0, atol=1e-4)
    sparse = out["bge_sparse"][2]
    if sparse is not None:  # a random head may zero every weight (ReLU)
        words = set(tok(TITLES[2], add_special_tokens=False)["input_ids"])
        assert set(sparse.indices.tolist()) <= words and (sparse.values > 0).all()
    again = m3.encode(products()[:1]).vectors["bge_dense"][0]
    np.testing.assert_allclose(again, dense, atol=1e-5)


@pytest.mark.parametrize("backend", ["edge", "server"])
def test_hybrid_query_prefetches_dense_and_sparse_then_rescores_with_colbert(
    m3, tmp_path, backend, request
):
    from retrieval.index import HYBRID, SearchRequest, open_index
    from retrieval.retriever import Retriever

    index = (
        open_index("edge", data_dir=tmp_path)
        if backend == "edge"
        else open_index("server", url=request.getfixturevalue("qdrant_node").url)
    )
    retriever = Retriever([m3], index, "m3")
    retriever.index_dataset(products(), "ds", recreate=True)
    enc = retriever.encode(products()[:3], query=True)
    reqs = retriever.requests(enc, 3, SearchRequest({}, HYBRID, 3))
    assert all(
        r.rescore == "bge_colbert" and set(r.hybrid) == {"bge_dense", "bge_sparse"} for r in reqs
    )
    hits = retriever.search(products()[:3], using=HYBRID, k=3)
    for i, row in enumerate(hits):
        assert row[0].id == f"p{i}"  # its own token vectors win MAX_SIM
        colbert = enc.vectors["bge_colbert"]
        assert row[0].score == pytest.approx(
            float((colbert[i] @ colbert[i].T).max(1).sum()), abs=1e-3
        )
    index.close()


def test_weights_without_the_heads_are_refused(tmp_path):
    from helpers.tiny_xlmr import build_tiny_xlmr

    folder = build_tiny_xlmr(tmp_path / "plain", heads=False)
    with pytest.raises(UsageError, match="lack sparse_linear.pt, colbert_linear.pt"):
        build_encoder(f"bge-m3:{folder}")
    dense_only = build_encoder(f"bge-m3:{folder},vectors=dense,device=cpu")
    assert [v.name for v in dense_only.vectors()] == ["bge_dense"]
    with pytest.raises(UsageError, match="bge-m3 vectors must be some of"):
        build_encoder(f"bge-m3:{folder},vectors=dense+splade")


def test_flagembedding_missing_names_the_flag_extra(monkeypatch, tmp_path):
    import sys

    from retrieval.errors import MissingExtraError

    monkeypatch.setitem(sys.modules, "FlagEmbedding", None)
    with pytest.raises(MissingExtraError, match=r"FlagEmbedding is not installed.*\[flag\]"):
        build_encoder(f"bge-m3:{tmp_path}")
