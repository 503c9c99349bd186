"""The pair-gbdt reranker: features of hand-made pairs with values worked out by hand,
the model file round trip, and the errors a user can meet (missing file, features or
vectors that do not match, no lightgbm)."""

from __future__ import annotations

import json
import math
import sys

import pytest
from helpers.pair_examples import cand, toy_examples

from rerank.base import build_reranker, rerank
from rerank.pair_features import FEATURES, list_features, margins, pair_features
from rerank.pair_gbdt import PairGbdtModel, feature_rows, sidecar_path
from rerank.title_tokens import char_ngrams, jaccard, model_codes, part_numbers, unit_agreement
from retrieval.errors import MissingExtraError, UsageError
from retrieval.types import Product

pytest.importorskip("lightgbm")
from training.pair_gbdt import GbdtParams, fit_pair_gbdt  # noqa: E402


def test_features_of_a_capacity_sibling():
    query = Product("q", "Samsung Galaxy A52 128GB Black", fields={"price": "100"})
    c = cand("samsung galaxy a52 256 gb black", 0.8, 2, price="50.0", sim_text=0.9)
    f = pair_features(query, c)
    assert f["sim_text"] == 0.9 and f["stage1_score"] == 0.8 and f["stage1_rank"] == 2
    # words {samsung galaxy a52 128gb black} vs {samsung galaxy a52 256gb black}: 4 of 6
    assert f["title_jaccard"] == pytest.approx(4 / 6)
    # 128gb vs 256gb: one unit (gb) on both sides, no value in common
    assert (f["num_unit_shared"], f["num_unit_conflict"]) == (0.0, 1.0)
    # a52 is the only model code on each side (128gb is a number with a unit)
    assert (f["model_shared"], f["model_conflict"], f["model_substring"]) == (1.0, 0.0, 1.0)
    assert f["same_brand"] == 1.0 and f["price_ratio"] == 0.5
    assert f["len_ratio"] == pytest.approx(30 / 31)  # characters of the two titles
    assert math.isnan(f["phash_hamming"])  # neither side has a hash
    assert set(FEATURES) <= set(f)


def test_char_trigram_jaccard_by_hand():
    # "abcd" -> {abc, bcd}; "abce x" -> {abc, bce, "ce ", "e x"}: 1 shared of 5
    assert jaccard(char_ngrams("ABCD"), char_ngrams("abce x")) == pytest.approx(1 / 5)
    assert math.isnan(jaccard(set(), set()))


def test_units_numbers_codes_and_hashes():
    assert unit_agreement("ssd 512 GB 2.5 inch", "ssd 512gb 2.50in") == (2.0, 0.0)
    assert unit_agreement("ram 8gb 128gb", "ram 4gb 128gb") == (1.0, 1.0)
    f = pair_features(
        Product("q", "sharp lc-26dv24u 26 tv basic 3", fields={"image_phash": "ff00"}),
        cand("Sharp LC26DV24U tv/dvd combo basic 1", image_phash="0f00"),
    )
    assert f["model_shared"] == 1.0  # hyphen dropped: lc26dv24u on both sides
    assert (f["number_shared"], f["number_conflict"]) == (0.0, 1.0)  # {26, 3} vs {1}
    assert f["phash_hamming"] == 4.0  # 0xff00 ^ 0x0f00 = 0xf000
    partial = pair_features(Product("q", "netgear jgs524f"), cand("netgear jgs524fna switch"))
    assert partial["model_conflict"] == 1.0 and partial["model_substring"] == 1.0


def test_list_features_compare_with_the_top_candidate():
    rows = [{"stage1_score": 0.8}, {"stage1_score": 0.6}, {"stage1_score": 0.2}]
    list_features(rows)
    assert [r["stage1_gap"] for r in rows] == pytest.approx([0.0, 0.2, 0.6])
    assert [r["stage1_ratio"] for r in rows] == pytest.approx([1.0, 0.75, 0.25])
    q1, q2 = Product("q1", "a"), Product("q2", "b")
    pairs = [(q1, cand("x", 1.0)), (q1, cand("y", 0.5)), (q2, cand("z", 0.25))]
    assert [r["stage1_gap"] for r in feature_rows(pairs)] == [0.0, 0.5, 0.0]


def test_memoised_title_tokens_cannot_be_changed_by_a_caller():
    from rerank.title_tokens import num_units, words

    title = "ssd 512 GB 2.5 inch"
    assert isinstance(words(title), frozenset) and words(title) is words(title)
    with pytest.raises(TypeError):
        num_units(title)["gb"] = frozenset({"1"})  # type: ignore[index]
    assert num_units(title)["gb"] == {"512"} and unit_agreement(title, "512gb") == (1.0, 0.0)


def test_digits_only_part_numbers_and_not_short_numbers():
    # 010-00715-20 and 0100071520 are one Garmin part number; 2009 and 1080 are not
    assert part_numbers("garmin nuvi 765t 0100071520") == {"0100071520"}
    assert part_numbers("garmin auto nav 010-00715-20 2009 1080p") == {"0100071520"}
    assert model_codes("garmin auto nav 010-00715-20 2009 1080p") == {"1080p"}
    f = pair_features(Product("q", "nuvi 0100071520"), cand("garmin 010-00715-20"))
    assert (f["part_shared"], f["part_conflict"]) == (1.0, 0.0)
    g = pair_features(Product("q", "nuvi 0100071520"), cand("garmin 010-00715-30"))
    assert (g["part_shared"], g["part_conflict"]) == (0.0, 1.0)


def test_margins_against_the_best_other_candidate():
    assert margins([3.0, 1.0, 2.0]) == [1.0, -2.0, -1.0]
    assert margins([2.0, 2.0]) == [0.0, 0.0]  # a tie: neither stands out
    nan = margins([1.0, math.nan, 0.5])
    assert nan[0] == 0.5 and math.isnan(nan[1]) and nan[2] == -0.5
    assert math.isnan(margins([4.0])[0])  # nothing to compare with
    # only the candidate sharing the query's code has a positive code margin
    query = Product("q", "canon cyan ink cli8c")
    cands = [cand("canon cli-8pc photo cyan ink", 0.9, 1), cand("canon cli-8c ink", 0.8, 2)]
    rows = feature_rows([(query, c) for c in cands])
    assert [r["model_shared_margin"] for r in rows] == [-1.0, 1.0]
    assert rows[0]["model_conflict_margin"] == 1.0  # cli8pc conflicts, cli8c does not
    alone = pair_features(query, cands[0])  # no list: the margins are unknown
    assert math.isnan(alone["model_shared_margin"])


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    params = GbdtParams(min_data_in_leaf=5, num_boost_round=60)
    model = fit_pair_gbdt(toy_examples(60, 0), toy_examples(20, 1), params)
    return model.save(tmp_path_factory.mktemp("gbdt") / "model.txt")


def test_reranker_puts_the_match_first_and_round_trips(model_file):
    reranker = build_reranker(f"pair-gbdt:{model_file},num_threads=1")
    assert reranker.needs_features and reranker.spec == f"pair-gbdt:{model_file},num_threads=1"
    query, cands, labels = toy_examples(1, 7)[0]
    ranked = rerank(reranker, query, cands)
    assert ranked[0].id == cands[labels.index(1)].id
    meta = json.loads(sidecar_path(model_file).read_text())
    assert meta["features"] == ["sim_text", *FEATURES] and meta["best_iteration"] >= 1
    again = PairGbdtModel.load(model_file)
    rows = feature_rows([(query, c) for c in cands])
    assert again.predict(rows) == reranker.model.predict(rows)


def test_missing_model_file_names_the_fix(tmp_path):
    with pytest.raises(UsageError, match="search train reranker --kind pair-gbdt"):
        build_reranker(f"pair-gbdt:{tmp_path / 'none.txt'}")
    with pytest.raises(UsageError, match="needs a model file"):
        build_reranker("pair-gbdt")


def test_features_of_another_version_refuse_to_load(model_file, tmp_path):
    copy = tmp_path / "old.txt"
    copy.write_text(model_file.read_text())
    meta = json.loads(sidecar_path(model_file).read_text())
    meta["features"] = [f for f in meta["features"] if f != "price_ratio"]
    sidecar_path(copy).write_text(json.dumps(meta))
    with pytest.raises(UsageError, match="trained on other features"):
        PairGbdtModel.load(copy)


def test_candidates_without_the_models_vectors_are_refused(model_file):
    reranker = build_reranker(f"pair-gbdt:{model_file}")
    query = Product("q", "phone x1 64gb")
    with pytest.raises(
        UsageError, match="trained on the vectors text; these candidates have image"
    ):
        reranker.score([(query, cand("phone x1 64gb", sim_image=0.5))])


def test_a_bad_calibration_in_the_sidecar_is_one_line(model_file, tmp_path):
    copy = tmp_path / "cal.txt"
    copy.write_text(model_file.read_text())
    meta = json.loads(sidecar_path(model_file).read_text())
    assert meta["calibration"]["slope"] > 0  # the default ranker is calibrated
    meta["calibration"] = {"slope": -1.0, "intercept": 0.0}
    sidecar_path(copy).write_text(json.dumps(meta))
    with pytest.raises(UsageError, match="bad calibration"):
        PairGbdtModel.load(copy)
    meta["calibration"] = {"slope": "x"}
    sidecar_path(copy).write_text(json.dumps(meta))
    with pytest.raises(UsageError, match="bad calibration"):
        PairGbdtModel.load(copy)


def test_missing_lightgbm_names_the_extra(model_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "lightgbm", None)
    with pytest.raises(MissingExtraError, match=r"\.\[gbdt\]"):
        PairGbdtModel.load(model_file)
