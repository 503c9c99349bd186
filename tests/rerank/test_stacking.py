"""Stacking: pair-gbdt blended with another reranker's scores by weights fitted on valid,
the sidecar that records both, and the one-line refusals (missing or wrong-kind with=,
other rerankers than the model was trained with, a blend of the wrong shape)."""

from __future__ import annotations

import json
import math
import shutil

import pytest
from helpers.pair_examples import toy_examples

pytest.importorskip("lightgbm")
pytest.importorskip("sentence_transformers")

from rerank.base import build_reranker, rerank  # noqa: E402
from rerank.pair_gbdt import (  # noqa: E402
    PairGbdtModel,
    PairGbdtReranker,
    feature_rows,
    sidecar_path,
)
from rerank.stack_blend import Blend, blend_inputs, is_raw  # noqa: E402
from rerank.stacking import (  # noqa: E402
    add_stack_features,
    build_stack,
    column_name,
    fingerprint,
    parse_with,
    stack_scores,
)
from retrieval.errors import UsageError  # noqa: E402
from training.pair_gbdt import GbdtParams, fit_blend, fit_pair_gbdt  # noqa: E402


@pytest.fixture(scope="module")
def stacked_model(tiny_cross_encoder, tmp_path_factory):
    """A pair-gbdt trained on toy candidates, blended with the tiny cross-encoder's scores
    of the valid candidates (the trainer's way: the trees never see the stacked column)."""
    spec = f"cross-encoder:{tiny_cross_encoder},device=cpu"
    stack = build_stack([spec])
    train, valid = toy_examples(40, 0), toy_examples(15, 1)
    params = GbdtParams(min_data_in_leaf=5, num_boost_round=30)
    info = {"stacked": [s.describe() for s in stack]}
    model = fit_pair_gbdt(train, valid, params, info)
    add_stack_features(stack, [(q, cands) for q, cands, _ in valid])
    fit_blend(model, [s.column for s in stack], valid)
    return model.save(tmp_path_factory.mktemp("stack") / "model.txt"), spec


def test_with_parses_several_rerankers_and_their_options():
    assert parse_with("cross-encoder:a;max_length=64+qwen-vl:b") == [
        "cross-encoder:a,max_length=64",
        "qwen-vl:b",
    ]
    assert parse_with(None) == [] and column_name(2, "cross-encoder") == "stack2_cross_encoder"
    with pytest.raises(UsageError, match="empty"):
        parse_with("cross-encoder:a+")


def test_stacked_scores_are_blended_and_the_sidecar_records_them(stacked_model):
    path, spec = stacked_model
    meta = json.loads(sidecar_path(path).read_text())
    assert not any(f.startswith("stack") for f in meta["features"])  # trees: own features
    (entry,) = meta["stacked"]
    assert entry["kind"] == "cross-encoder" and entry["spec"] == spec
    assert len(meta["blend"]["coef"]) == 3  # logit(pair-gbdt), logit(CE), CE's gap to the best
    reranker = build_reranker(f"pair-gbdt:{path},with={spec.replace(',', ';')}")
    query, cands, _ = toy_examples(1, 7)[0]
    pairs = [(query, c) for c in cands]
    scores = reranker.score(pairs)
    assert len(rerank(reranker, query, cands)) == len(cands) and all(0 < s < 1 for s in scores)
    # the blend of the booster's probability and the cross-encoder's own scores of the pairs
    base = PairGbdtModel.load(path).predict(feature_rows(pairs))
    direct = reranker.stacked[0].reranker.score(pairs)
    x = blend_inputs(base, [direct], [(0, len(pairs))])
    assert scores == pytest.approx(Blend(**meta["blend"]).predict(x))
    assert x[:, 2].min() == 0.0  # the list's best CE score has no gap


def test_blend_fits_a_separable_signal_and_refuses_a_wrong_shape(stacked_model):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y = (x[:, 1] > 0).astype(float)
    blend = Blend.fit(x, y)
    assert abs(blend.coef[1]) > 5 * max(abs(blend.coef[0]), abs(blend.coef[2]))
    path, spec = stacked_model
    model = PairGbdtModel.load(path)
    model.info["blend"] = {**model.info["blend"], "coef": [1.0]}
    with pytest.raises(UsageError, match="3 expected"):
        PairGbdtReranker(model, stacked=build_stack([spec]))
    with pytest.raises(UsageError, match="both kinds"):
        Blend.fit(x, np.zeros(400))


def test_stack_features_in_chunks_equal_one_pass_and_tick_every_query(tiny_cross_encoder):
    stack = build_stack([f"cross-encoder:{tiny_cross_encoder},device=cpu"])
    items = [(q, cands) for q, cands, _ in toy_examples(5, 2)]
    ticks: list[tuple[str, int | None, int]] = []

    def progress(label, total):
        return lambda n: ticks.append((label, total, n))

    add_stack_features(stack, items, progress, chunk=2)
    pairs = [(q, c) for q, cands in items for c in cands]
    direct = stack_scores(stack, pairs)[stack[0].column]
    stored = [c.features[stack[0].column] for _, c in pairs]
    assert stored == pytest.approx(direct, abs=1e-5)
    assert [n for *_, n in ticks] == [2, 2, 1] and ticks[0][:2] == ("stacked rerankers", 5)


def test_raw_scores_stay_raw_whatever_one_query_s_scores_look_like():
    # a reranker run with activation=none: decided on the fitting rows, kept per query
    fit_rows = [-3.0, 0.2, 4.0]
    assert is_raw(fit_rows) and not is_raw([0.2, 0.7])
    one_query = [0.2, 0.7]  # all inside [0, 1] by chance
    x = blend_inputs([0.5, 0.5], [one_query], [(0, 2)], raw=[True])
    assert x[:, 1].tolist() == one_query
    y = blend_inputs([0.5, 0.5], [one_query], [(0, 2)])
    assert y[0, 1] == pytest.approx(math.log(0.2 / 0.8))


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


def test_out_of_fold_blend_holds_each_query_out_of_its_own_fit(tiny_cross_encoder):
    """The stack's valid figures come from blends fitted without the query's fold: each
    held-out probability equals a blend fitted on the other folds by hand; too few
    queries for the folds is None (the trainer then says its figures are in-sample)."""
    from training.pair_gbdt import blend_out_of_fold, blend_rows

    stack = build_stack([f"cross-encoder:{tiny_cross_encoder},device=cpu"])
    train, valid = toy_examples(40, 0), toy_examples(15, 1)
    model = fit_pair_gbdt(train, valid, GbdtParams(min_data_in_leaf=5, num_boost_round=30))
    add_stack_features(stack, [(q, cands) for q, cands, _ in valid])
    cols = [s.column for s in stack]
    oof = blend_out_of_fold(model, cols, valid, folds=3)
    x, y, _ = blend_rows(model, cols, valid)
    assert oof is not None and len(oof) == len(y) and all(0 < p < 1 for p in oof)
    fold = [i % 3 for i, (_, cands, _) in enumerate(valid) for _ in cands]
    held = [f == 1 for f in fold]
    rest = [not h for h in held]
    by_hand = Blend.fit(x[rest], y[rest]).predict(x[held])
    assert [p for p, h in zip(oof, held) if h] == pytest.approx(by_hand)
    in_sample = fit_blend(model, cols, valid).predict(x)
    assert oof != pytest.approx(in_sample)  # not the weights fitted on every row
    assert blend_out_of_fold(model, cols, valid[:2], folds=3) is None
