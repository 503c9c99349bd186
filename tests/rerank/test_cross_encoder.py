"""The cross-encoder reranker on a tiny random BERT loaded by path."""

from __future__ import annotations

import math
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")

from rerank.base import build_reranker, rerank  # noqa: E402
from retrieval.errors import MissingExtraError, SearchError, UsageError  # noqa: E402
from retrieval.types import Candidate, Product  # noqa: E402

ROWS = [
    ("samsung galaxy a52 128gb hitam", None, "samsung galaxy a52 hitam original", None),
    ("nike", None, "xiaomi redmi note 10 64 gb garansi resmi murah", None),
    ("xiaomi redmi note 10", None, "xiaomi redmi note 10 64gb", None),
    ("sepatu nike air zoom putih biru original murah", None, "sepatu", None),
    ("a", None, "b", None),
]


@pytest.fixture(scope="module")
def reranker(tiny_cross_encoder):
    return build_reranker(f"cross-encoder:{tiny_cross_encoder},device=cpu,batch_size=2")


def test_scores_one_per_pair_in_order(reranker, make_pairs):
    pairs = make_pairs(ROWS)
    scores = reranker.score(pairs)
    assert len(scores) == len(pairs)
    assert all(0.0 < s < 1.0 for s in scores)
    # the same pairs reversed give the same scores reversed
    assert reranker.score(pairs[::-1]) == pytest.approx(scores[::-1], abs=1e-6)
    assert reranker.score([]) == []
    assert reranker.spec.startswith("cross-encoder:") and reranker.spec.endswith("batch_size=2")


def test_length_sorting_does_not_change_scores(reranker, make_pairs):
    pairs = make_pairs(ROWS)
    batched = reranker.score(pairs)
    single = [reranker.score([p])[0] for p in pairs]
    assert batched == pytest.approx(single, abs=1e-5)


def test_rerank_sorts_candidates(reranker):
    query = Product("q", "samsung galaxy a52")
    cands = [Candidate(Product(f"c{i}", t), 0.0, i) for i, (_, _, t, _) in enumerate(ROWS)]
    ranked = rerank(reranker, query, cands)
    assert [c.score for c in ranked] == sorted((c.score for c in ranked), reverse=True)


def test_known_logit(tiny_cross_encoder, make_pairs):
    rr = build_reranker(f"cross-encoder:{tiny_cross_encoder},device=cpu,activation=none")
    head = rr.model.model.classifier
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(0.75)
    pairs = make_pairs(ROWS)
    assert rr.score(pairs) == pytest.approx([0.75] * len(pairs), abs=1e-6)
    rr.probabilities = True
    assert rr.score(pairs) == pytest.approx([1 / (1 + math.exp(-0.75))] * len(pairs), abs=1e-6)
    # leaning on stage 1: -weight * log2(1 + rank) added to the logit; rank 0 is unknown
    rr.probabilities, rr.stage1_weight = False, 2.0
    ranks = [c.stage1_rank for _, c in pairs]
    expected = [0.75 - 2.0 * math.log2(1 + r) if r >= 1 else 0.75 for r in ranks]
    assert rr.score(pairs) == pytest.approx(expected, abs=1e-6)
    assert expected[2] == pytest.approx(0.75 - 2.0 * math.log2(3))


@pytest.mark.parametrize("value", ["-1", "abc", "nan"])
def test_bad_stage1_weight_is_one_line(tiny_cross_encoder, value):
    with pytest.raises(UsageError, match="stage1_weight"):
        build_reranker(f"cross-encoder:{tiny_cross_encoder},device=cpu,stage1_weight={value}")


def test_truncation_counted(tiny_cross_encoder, make_pairs):
    rr = build_reranker(f"cross-encoder:{tiny_cross_encoder},device=cpu,max_length=16")
    long_title = "samsung galaxy a52 128gb hitam original garansi resmi murah putih biru"
    pairs = make_pairs([("nike", None, "sepatu", None), (long_title, None, long_title, None)])
    scores = rr.score(pairs)
    assert len(scores) == 2
    assert rr.stats.counts == {"truncated": 1}
    rr.score(pairs)
    assert rr.stats.counts == {"truncated": 2}


def test_fields_option_reaches_the_text(tiny_cross_encoder):
    rr = build_reranker(f"cross-encoder:{tiny_cross_encoder},device=cpu,fields=brand+size")
    product = Product("p", "sepatu", fields={"brand": "nike", "size": 42})
    assert rr.format(product) == "sepatu | brand: nike | size: 42"


def test_oom_halves_the_batch(tiny_cross_encoder, make_pairs, monkeypatch, caplog):
    rr = build_reranker(f"cross-encoder:{tiny_cross_encoder},device=cpu,batch_size=4")
    pairs = make_pairs(ROWS)
    expected = rr.score(pairs)
    real, sizes = rr.model.predict, []

    def flaky(texts, **kwargs):
        sizes.append(len(texts))
        if len(sizes) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(texts, **kwargs)

    monkeypatch.setattr(rr.model, "predict", flaky)
    assert rr.score(pairs) == pytest.approx(expected, abs=1e-5)
    assert sizes == [4, 2, 2, 1]
    assert "retrying with batch size 2" in caplog.text

    def always(texts, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(rr.model, "predict", always)
    with pytest.raises(SearchError, match="batch size 1"):
        rr.score(pairs)


@pytest.mark.parametrize(
    "options, message",
    [
        (",batch_size=many", "not an integer"),
        (",batch_size=0", "at least 1"),
        (",activation=relu", "activation"),
        (",precision=int8", "precision"),
        (",device=tpu", "unknown device"),
        (",colour=red", "bad options"),
    ],
)
def test_bad_options(tiny_cross_encoder, options, message):
    with pytest.raises(UsageError, match=message):
        build_reranker(f"cross-encoder:{tiny_cross_encoder},device=cpu{options}")


def test_missing_model_is_one_line_error(tmp_path):
    with pytest.raises(SearchError, match="cannot load cross-encoder"):
        build_reranker(f"cross-encoder:{tmp_path / 'nope'},device=cpu")


def test_missing_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(MissingExtraError) as err:
        build_reranker("cross-encoder")
    assert err.value.extra == "text"


@pytest.mark.parametrize(
    "text, joined",
    [
        ("garmin nuvi 010-00715-20", "garmin nuvi 0100071520"),
        ("yamaha ysp-3050bl projector", "yamaha ysp3050bl projector"),
        ("Sharp LC-26DV24U 26 ' tv/dvd combo", "Sharp LC26DV24U 26 ' tv/dvd combo"),
        ("over-the-range microwave, 4-cup", "over-the-range microwave, 4cup"),
        ("sony lcs-twa/r case", "sony lcs-twa/r case"),  # no digit: a word, not a code
    ],
)
def test_join_codes(text, joined):
    from rerank.base import join_codes, text_form

    assert join_codes(text) == joined
    assert text_form(text, "raw") == text


def test_text_form_comes_from_the_trained_folder(tiny_cross_encoder, tmp_path):
    """A folder our trainer wrote reads titles in the form it was trained on; a spec can
    override it; a damaged sidecar is one line."""
    import shutil

    from rerank.base import TEXT_SIDECAR

    folder = tmp_path / "ce"
    shutil.copytree(tiny_cross_encoder, folder)
    product = Product("p", "garmin 010-00715-20")
    plain = build_reranker(f"cross-encoder:{folder},device=cpu")
    assert plain.format(product) == "garmin 010-00715-20"  # no sidecar: as stored
    (folder / TEXT_SIDECAR).write_text('{"text": "codes"}')
    trained = build_reranker(f"cross-encoder:{folder},device=cpu")
    assert trained.format(product) == "garmin 0100071520"
    pairs = [(product, Candidate(Product("c", "garmin 010-00715-20"), 0.5, 1))]
    same = [
        (Product("p", "garmin 0100071520"), Candidate(Product("c", "garmin 0100071520"), 0.5, 1))
    ]
    assert trained.score(pairs) == pytest.approx(plain.score(same), abs=1e-6)
    raw = build_reranker(f"cross-encoder:{folder},device=cpu,text=raw")
    assert raw.format(product) == "garmin 010-00715-20"
    with pytest.raises(UsageError, match="text"):
        build_reranker(f"cross-encoder:{folder},device=cpu,text=lower")
    # the stage-1 weight the trainer chose comes from the folder; a spec can override it
    (folder / TEXT_SIDECAR).write_text('{"text": "codes", "stage1_weight": 1.5}')
    assert build_reranker(f"cross-encoder:{folder},device=cpu").stage1_weight == 1.5
    alone = build_reranker(f"cross-encoder:{folder},device=cpu,stage1_weight=0")
    assert alone.stage1_weight == 0.0
    (folder / TEXT_SIDECAR).write_text('{"stage1_weight": -2}')
    with pytest.raises(UsageError, match="stage1_weight must be"):
        build_reranker(f"cross-encoder:{folder},device=cpu")
    (folder / TEXT_SIDECAR).write_text('{"text": "zip"}')
    with pytest.raises(UsageError, match="unknown text form 'zip'"):
        build_reranker(f"cross-encoder:{folder},device=cpu")
    (folder / TEXT_SIDECAR).write_text("{not json")
    with pytest.raises(UsageError, match="cannot read"):
        build_reranker(f"cross-encoder:{folder},device=cpu")
