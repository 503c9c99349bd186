"""FlagEmbedding's rerankers by exact kind: FlagReranker on a tiny BERT cross-encoder,
FlagLLMReranker on a tiny Qwen2 with the product prompt, and a missing FlagEmbedding
naming its extra (the layer-wise kind: test_layerwise.py)."""

from __future__ import annotations

import math

import pytest

from retrieval.errors import MissingExtraError, UsageError

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
try:
    from retrieval.flag_compat import import_flag

    import_flag()
except ImportError:  # pragma: no cover
    pytest.skip("FlagEmbedding is not installed", allow_module_level=True)

from helpers.tiny_llm import PAIR_QUERY, PAIR_TITLES  # noqa: E402
from helpers.tiny_llm import title_pairs as pairs  # noqa: E402

from rerank import build_reranker, reranker_kinds  # noqa: E402


@pytest.fixture(scope="module")
def cross_dir(tmp_path_factory):
    from helpers.tiny_bert import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("ce"), classifier=True)


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    from helpers.tiny_llm import build_tiny_qwen2

    return build_tiny_qwen2(tmp_path_factory.mktemp("qwen2"))


def test_kinds_are_registered_by_exact_name():
    assert {"flag", "flag-llm", "flag-layerwise"} <= set(reranker_kinds())


def test_flag_reranker_scores_are_the_sigmoid_of_the_cross_encoder_logit(cross_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    reranker = build_reranker(f"flag:{cross_dir},device=cpu,max_length=64")
    scores = reranker.score(pairs())
    tok = AutoTokenizer.from_pretrained(cross_dir)
    model = AutoModelForSequenceClassification.from_pretrained(cross_dir).eval()
    with torch.no_grad():
        batch = tok([PAIR_QUERY] * 3, list(PAIR_TITLES), padding=True, return_tensors="pt")
        logits = model(**batch).logits.view(-1)
    want = [1 / (1 + math.exp(-float(x))) for x in logits]
    assert scores == pytest.approx(want, abs=1e-4)
    assert all(0.0 < s < 1.0 for s in scores)
    assert reranker.score(pairs()[:1]) == pytest.approx(scores[:1], abs=1e-6)
    assert reranker.score([]) == []


def test_flag_llm_uses_the_product_prompt_and_normalises(qwen_dir):
    from rerank.flag import PRODUCT_PROMPT

    reranker = build_reranker(f"flag-llm:{qwen_dir},device=cpu,max_length=64")
    assert reranker.call_options["prompt"] == PRODUCT_PROMPT
    assert "same product" in PRODUCT_PROMPT
    scores = reranker.score(pairs())
    assert len(scores) == 3 and all(0.0 < s < 1.0 for s in scores)
    assert reranker.score(pairs()) == pytest.approx(scores)
    other = build_reranker(f"flag-llm:{qwen_dir},device=cpu,prompt=Yes or No ?")
    assert other.score(pairs()) != pytest.approx(scores, abs=1e-9)  # the prompt is read


def test_bad_options_are_usage_errors(cross_dir):
    with pytest.raises(UsageError, match="bad options for reranker 'flag'"):
        build_reranker(f"flag:{cross_dir},cutoff_layer=3")
    with pytest.raises(UsageError, match="batch_size"):
        build_reranker(f"flag:{cross_dir},batch_size=zero")


def test_flagembedding_missing_names_the_extra(monkeypatch, cross_dir):
    import sys

    monkeypatch.setitem(sys.modules, "FlagEmbedding", None)
    with pytest.raises(MissingExtraError, match=r"\[flag\]"):
        build_reranker(f"flag:{cross_dir}")
