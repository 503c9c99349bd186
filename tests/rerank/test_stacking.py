"""Stacking: pair-gbdt with another reranker's scores as a feature, the sidecar that
records it, and the one-line refusals (missing or wrong-kind with=, other rerankers
than the model was trained with)."""

from __future__ import annotations

import json
import shutil

import pytest
from helpers.pair_examples import toy_examples

pytest.importorskip("lightgbm")
pytest.importorskip("sentence_transformers")

from rerank.base import build_reranker, rerank  # noqa: E402
from rerank.pair_gbdt import sidecar_path  # noqa: E402
from rerank.stacking import (  # noqa: E402
    add_stack_features,
    build_stack,
    column_name,
    fingerprint,
    parse_with,
)
from retrieval.errors import UsageError  # noqa: E402
from training.pair_gbdt import GbdtParams, fit_pair_gbdt  # noqa: E402


@pytest.fixture(scope="module")
def stacked_model(tiny_cross_encoder, tmp_path_factory):
    """A pair-gbdt trained on toy candidates scored by the tiny cross-encoder."""
    spec = f"cross-encoder:{tiny_cross_encoder},device=cpu"
    stack = build_stack([spec])
    train, valid = toy_examples(40, 0), toy_examples(15, 1)
    for examples in (train, valid):
        add_stack_features(stack, [(q, cands) for q, cands, _ in examples])
    params = GbdtParams(min_data_in_leaf=5, num_boost_round=30)
    info = {"stacked": [s.describe() for s in stack]}
    model = fit_pair_gbdt(train, valid, params, info)
    return model.save(tmp_path_factory.mktemp("stack") / "model.txt"), spec


def test_with_parses_several_rerankers_and_their_options():
    assert parse_with("cross-encoder:a;max_length=64+qwen-vl:b") == [
        "cross-encoder:a,max_length=64",
        "qwen-vl:b",
    ]
    assert parse_with(None) == [] and column_name(2, "cross-encoder") == "stack2_cross_encoder"
    with pytest.raises(UsageError, match="empty"):
        parse_with("cross-encoder:a+")


def test_stacked_scores_are_a_column_and_the_sidecar_records_them(stacked_model):
    path, spec = stacked_model
    meta = json.loads(sidecar_path(path).read_text())
    assert "stack1_cross_encoder" in meta["features"]
    (entry,) = meta["stacked"]
    assert entry["kind"] == "cross-encoder" and entry["spec"] == spec
    reranker = build_reranker(f"pair-gbdt:{path},with={spec.replace(',', ';')}")
    query, cands, _ = toy_examples(1, 7)[0]
    seen: list = []
    predict = reranker.model.predict
    reranker.model.predict = lambda rows: seen.extend(rows) or predict(rows)
    ranked = rerank(reranker, query, cands)
    assert len(ranked) == len(cands)
    # the booster read the cross-encoder's own score of each pair in its column
    direct = reranker.stacked[0].reranker.score([(query, c) for c in cands])
    assert [r["stack1_cross_encoder"] for r in seen] == pytest.approx(direct)


def test_a_model_moved_keeps_its_fingerprint(tiny_cross_encoder, tmp_path):
    copy = tmp_path / "moved"
    shutil.copytree(tiny_cross_encoder, copy)
    assert fingerprint(str(copy)) == fingerprint(str(tiny_cross_encoder))
    weights = next(p for p in copy.iterdir() if p.suffix in (".safetensors", ".bin"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert fingerprint(str(copy)) != fingerprint(str(tiny_cross_encoder))


def test_other_rerankers_than_trained_with_are_refused(stacked_model, tiny_cross_encoder, tmp_path):
    path, _ = stacked_model
    with pytest.raises(UsageError, match="trained with with=cross-encoder.*given with=none"):
        build_reranker(f"pair-gbdt:{path}")
    other = tmp_path / "other-ce"
    shutil.copytree(tiny_cross_encoder, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "note": "retrained"}))
    with pytest.raises(UsageError, match="same kinds, other model files"):
        build_reranker(f"pair-gbdt:{path},with=cross-encoder:{other}")


def test_missing_or_wrong_kind_with_is_one_line(stacked_model, tmp_path):
    path, _ = stacked_model
    with pytest.raises(UsageError, match="not found") as missing:
        build_reranker(f"pair-gbdt:{path},with=cross-encoder:{tmp_path / 'none'}")
    assert "\n" not in str(missing.value)
    with pytest.raises(UsageError, match="cannot be stacked"):
        build_reranker(f"pair-gbdt:{path},with=pair-gbdt:{path}")
    with pytest.raises(UsageError, match=r"with=cross-encoder:.*model\.txt") as wrong:
        build_reranker(f"pair-gbdt:{path},with=cross-encoder:{path}")
    assert "\n" not in str(wrong.value)
