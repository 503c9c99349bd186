"""Property-based fuzz of the hand-editable JSON files (issue 23: the fuzz extended to
``matcher.json`` and the sidecars): any JSON value (NaN and infinities included) put at
any key of a good file, or under a new key, gives either a working load or one
``UsageError`` line, never another exception; a matcher that loads has only finite
numbers, so what it writes stays JSON.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers.pair_examples import toy_examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rerank.base import TEXT_SIDECAR, trained_reading
from rerank.pair_gbdt import PairGbdtModel, sidecar_path
from retrieval.errors import SearchError
from search.match.matcher import Matcher, PairModel
from search.match.rules import Rule

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
DEEP = object()  # stands for a value nested 50,000 deep
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()  # NaN and infinities too: Python's json writes and reads them
    | st.text(max_size=12)
    | st.sampled_from(["", "none", "mean", "pair", "sparse", "components", "codes", "\x00"])
    | st.just(DEEP),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a JSON value (dict keys and list indices)."""
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += paths(v, (*prefix, i))
    return out


def put(data: Any, path: tuple, value: Any) -> Any:
    """A copy of ``data`` with ``value`` at ``path`` (a new key where the last is new)."""
    data = json.loads(json.dumps(data))
    node = data
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return data


def dumps(data: Any) -> str:
    """JSON text, with the ``DEEP`` marker spelt out 50,000 levels deep."""
    text = json.dumps(data, default=lambda _: "@@DEEP@@")
    return text.replace('"@@DEEP@@"', "[" * 50_000 + "]" * 50_000)


def edits(good: dict) -> st.SearchStrategy[str]:
    """A good file's text with one value replaced, or one key added, anywhere."""
    keyed = [p for p in paths(good)]
    dicts = [(), *[p for p in keyed if isinstance(_at(good, p), dict)]]
    replace = st.tuples(st.sampled_from(keyed), json_values).map(lambda t: put(good, *t))
    add = st.tuples(st.sampled_from(dicts), st.text(max_size=8), json_values).map(
        lambda t: put(good, (*t[0], t[1]), t[2])
    )
    return (replace | add).map(dumps)


def _at(data: Any, path: tuple) -> Any:
    for p in path:
        data = data[p]
    return data


def one_line_or_loaded(load, path: Path) -> Any:
    try:
        return load(path)
    except SearchError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc), str(exc)
        return None


def finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(finite(v) for v in value.values())
    if isinstance(value, list):
        return all(finite(v) for v in value)
    return True


GOOD_MATCHER = Matcher(
    ["sparse", "text"],
    ["sparse", "text"],
    {"sparse": 1.0, "text": 0.5},
    [
        Rule("s", {"sparse": 0.5}, "sparse", min2=0.2),
        Rule("g", {"mean": 0.5}, "mean", groups="components", group_cap=4, inb=1),
        Rule("p", {"pair": 0.5}, "pair", group_threshold=0.4),
    ],
    "s",
    pair=PairModel("matcher.pair.txt", ["mean"], seeds=2),
    info={"tuned_listings": 40, "valid_f1": {"s": 0.5}},
).to_json()


@FUZZ
@given(text=edits(GOOD_MATCHER))
def test_any_value_anywhere_in_a_matcher(tmp_path, text):
    path = tmp_path / "matcher.json"
    path.write_text(text)
    matcher = one_line_or_loaded(Matcher.load, path)
    if matcher is not None:
        assert finite(matcher.to_json())
        json.dumps(matcher.to_json(), allow_nan=False)
        assert matcher.k >= 1 and matcher.chosen() in matcher.rules
        assert set(matcher.weights) <= set(matcher.vectors) and sum(matcher.weights.values()) > 0


GOOD_READING = {"text": "codes", "fields": ["brand"], "stage1_weight": 1.0}


@FUZZ
@given(text=edits(GOOD_READING))
def test_any_value_anywhere_in_a_reranker_sidecar(tmp_path, text):
    (tmp_path / TEXT_SIDECAR).write_text(text)
    reading = one_line_or_loaded(lambda p: trained_reading(p.parent), tmp_path / TEXT_SIDECAR)
    if reading is not None:
        assert math.isfinite(reading.stage1_weight) and reading.stage1_weight >= 0
        assert all(isinstance(f, str) for f in reading.fields)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    pytest.importorskip("lightgbm")
    from training.pair_gbdt import GbdtParams, fit_pair_gbdt

    model = fit_pair_gbdt(
        toy_examples(40, 0), toy_examples(20, 1), GbdtParams(min_data_in_leaf=5, num_boost_round=8)
    )
    meta = model.info
    meta["blend"] = {"mean": [0.0], "scale": [1.0], "coef": [1.0], "intercept": 0.0, "raw": []}
    return model.save(tmp_path_factory.mktemp("gbdt") / "model.txt")


def test_any_value_anywhere_in_a_pair_gbdt_sidecar(model_file, tmp_path_factory):
    good = json.loads(sidecar_path(model_file).read_text())
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / "model.txt"
    shutil.copy(model_file, path)

    @FUZZ
    @given(text=edits(good))
    def run(text):
        sidecar_path(path).write_text(text)
        try:
            model = PairGbdtModel.load(path)
        except SearchError as exc:
            assert "\n" not in str(exc), str(exc)
            return
        assert model.features and finite(model.info.get("blend") or {})

    run()
