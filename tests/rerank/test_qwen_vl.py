"""The qwen-vl reranker on a tiny random Qwen2-VL loaded by path."""

from __future__ import annotations

import math
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("qwen_vl_utils")

from rerank.base import build_reranker  # noqa: E402
from retrieval.errors import MissingExtraError, SearchError, UsageError  # noqa: E402


@pytest.fixture(scope="module")
def reranker(tiny_qwen_vl):
    return build_reranker(f"qwen-vl:{tiny_qwen_vl},device=cpu,batch_size=3")


@pytest.fixture()
def rows(images):
    return [
        ("samsung galaxy a52", images["red"], "samsung galaxy a52 hitam", images["blue"]),
        ("nike air zoom", images["red"], "sepatu nike", None),
        ("xiaomi redmi note 10", None, "xiaomi redmi", images["blue"]),
        ("sepatu", None, "sepatu putih", None),
        ("samsung galaxy", images["blue"], "", images["red"]),
    ]


def test_scores_are_probabilities_in_order(reranker, make_pairs, rows):
    pairs = make_pairs(rows)
    scores = reranker.score(pairs)
    assert len(scores) == len(pairs)
    assert all(0.0 < s < 1.0 for s in scores)
    assert reranker.score(pairs[::-1]) == pytest.approx(scores[::-1], abs=1e-5)
    assert reranker.score([]) == []


def test_batched_equals_unbatched(reranker, make_pairs, rows):
    pairs = make_pairs(rows)
    batched = reranker.score(pairs)
    single = [reranker.score([p])[0] for p in pairs]
    assert batched == pytest.approx(single, abs=1e-5)


def test_prompt_holds_both_listings(reranker, make_pairs, images):
    (query, cand), *_ = make_pairs([("nike air", images["red"], "sepatu", None)])
    text, imgs = reranker.prepare(query, cand.product)
    assert text.count("<|vision_start|>") == 1 and len(imgs) == 1
    assert text.index("Listing A:") < text.index("nike air") < text.index("Listing B:")
    assert text.endswith("<|im_start|>assistant\n")
    # images are resized to multiples of patch * merge (28) inside the pixel bounds
    width, height = imgs[0].size
    assert width % 28 == 0 and height % 28 == 0
    assert 64 * 28 * 28 <= width * height <= 512 * 28 * 28


def test_missing_and_unreadable_images_fall_back_to_text(tiny_qwen_vl, make_pairs, images):
    rr = build_reranker(f"qwen-vl:{tiny_qwen_vl},device=cpu")
    pairs = make_pairs(
        [
            ("nike", images["corrupt"], "nike", images["red"]),
            ("nike", images["missing"], "nike", None),
            ("nike", None, "nike", None),
        ]
    )
    scores = rr.score(pairs)
    assert len(scores) == 3 and all(0.0 < s < 1.0 for s in scores)
    assert rr.stats.counts == {"unreadable_image": 2, "no_image": 3}
    # an unreadable side scores as a text-only side
    text_only = rr.score(make_pairs([("nike", None, "nike", images["red"])]))
    assert scores[0] == pytest.approx(text_only[0], abs=1e-5)


def test_known_logits(tiny_qwen_vl, make_pairs, rows):
    rr = build_reranker(f"qwen-vl:{tiny_qwen_vl},device=cpu,batch_size=2")
    pairs = make_pairs(rows)
    head = rr.model.lm_head.weight
    yes, no = rr.token_ids
    with torch.no_grad():
        head.zero_()
    assert rr.score(pairs) == [0.5] * len(pairs)
    # logit_yes - logit_no = c * h[k] for the final (normed) hidden state h
    c, k = 3.0, 5
    with torch.no_grad():
        head[no].normal_()
        head[yes] = head[no]
        head[yes, k] += c
    items = [rr.prepare(q, cand.product) for q, cand in pairs]
    with torch.inference_mode():
        hidden = rr.model.model(**rr.inputs(items)).last_hidden_state[:, -1, k]
    expected = [1 / (1 + math.exp(-c * float(h))) for h in hidden]
    assert rr.score(pairs) == pytest.approx(expected, abs=1e-5)
    assert rr.margins(pairs) == pytest.approx([c * float(h) for h in hidden], abs=1e-4)
    # leaning on stage 1: -w * log2(1 + rank) joins the yes-no logit before the sigmoid
    rr.stage1_weight = 0.5
    ranks = [cand.stage1_rank for _, cand in pairs]
    leaned = [
        1 / (1 + math.exp(-(c * float(h) - (0.5 * math.log2(1 + r) if r >= 1 else 0.0))))
        for h, r in zip(hidden, ranks)
    ]
    assert rr.score(pairs) == pytest.approx(leaned, abs=1e-5)


def test_custom_tokens_and_instruction(tiny_qwen_vl, make_pairs):
    rr = build_reranker(
        f"qwen-vl:{tiny_qwen_vl},device=cpu,yes_token=no,no_token=yes,instruction=Same product?"
    )
    (query, cand), *_ = make_pairs([("nike", None, "sepatu", None)])
    assert rr.prepare(query, cand.product)[0].count("Same product?") == 1
    flipped = rr.score([(query, cand)])[0]
    plain_spec = f"qwen-vl:{tiny_qwen_vl},device=cpu,instruction=Same product?"
    plain = build_reranker(plain_spec).score([(query, cand)])[0]
    assert flipped == pytest.approx(1 - plain, abs=1e-6)


def test_oom_halves_the_batch(tiny_qwen_vl, make_pairs, rows, monkeypatch):
    rr = build_reranker(f"qwen-vl:{tiny_qwen_vl},device=cpu,batch_size=4")
    pairs = make_pairs(rows)
    expected = rr.score(pairs)
    real, sizes = rr._forward, []

    def flaky(items):
        sizes.append(len(items))
        if len(sizes) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(items)

    monkeypatch.setattr(rr, "_forward", flaky)
    assert rr.score(pairs) == pytest.approx(expected, abs=1e-5)
    assert sizes == [4, 2, 2, 1] and rr.batch_size == 2


@pytest.mark.parametrize(
    "options, error, message",
    [
        (",yes_token=samsung galaxy", UsageError, "single token"),
        (",no_token=zebra", UsageError, "single token"),
        (",min_pixels=1000,max_pixels=10", UsageError, "above max_pixels"),
        (",batch_size=x", UsageError, "not an integer"),
        (",temperature=2", UsageError, "bad options"),
        (",stage1_weight=-1", UsageError, "stage1_weight"),
    ],
)
def test_bad_options(tiny_qwen_vl, options, error, message):
    with pytest.raises(error, match=message):
        build_reranker(f"qwen-vl:{tiny_qwen_vl},device=cpu{options}")


def test_missing_model_is_one_line_error(tmp_path):
    with pytest.raises(SearchError, match="cannot load qwen-vl"):
        build_reranker(f"qwen-vl:{tmp_path / 'nope'},device=cpu")


def test_missing_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "qwen_vl_utils", None)
    with pytest.raises(MissingExtraError, match="qwen-vl-utils") as err:
        build_reranker("qwen-vl")
    assert err.value.extra == "vl"
