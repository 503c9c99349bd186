"""One validation layer for the files a user can hand-edit (issue 23, Build): the TOML
config, the pair-gbdt sidecar (``MODEL.txt.json``) and a trained cross-encoder folder's
``search_reranker.json``, as ``matcher.json`` (``test_matcher_file.py``): wrong types,
NaN or infinite numbers, unknown keys (with "did you mean") and nesting too deep are one
line naming the file and the key, never accepted silently and never a traceback.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest
from helpers.pair_examples import toy_examples
from typer.testing import CliRunner

from rerank.base import TEXT_SIDECAR, trained_reading
from rerank.pair_gbdt import PairGbdtModel, sidecar_path
from retrieval.errors import UsageError
from search.cli import app
from search.config import load_config

runner = CliRunner()
DEEP = "[" * 50_000 + "]" * 50_000


# -- the TOML config -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "says"),
    [
        ("[stage2]\nblend = nan\n", "stage2.blend = nan: expected a finite number"),
        ("[index]\noversampling = inf\n", "index.oversampling = inf: expected a finite number"),
        ("[index]\noversampling = -inf\n", "index.oversampling = -inf: expected a finite"),
        ("[stage1]\nk = 'many'\n", "config stage1.k = 'many': expected int"),
        ("[stage1]\nkk = 5\n", "unknown config key stage1.kk; did you mean 'k'?"),
        ("[stage1]\nk = 0\n", "stage1.k must be from 1"),
        ("[stag1]\nk = 5\n", "unknown config section [stag1]; did you mean [stage1]?"),
        ("train = 3\n", "[train] holds one table per trainer"),
    ],
)
def test_a_bad_config_value_is_one_line_naming_the_file_and_the_key(tmp_path, toml, says):
    path = tmp_path / "search.toml"
    path.write_text(toml)
    with pytest.raises(UsageError) as err:
        load_config(path)
    line = str(err.value)
    assert line.startswith(f"{path}: ") and says in line and "\n" not in line, line


def test_a_bad_flag_is_not_blamed_on_the_file(tmp_path):
    path = tmp_path / "search.toml"
    path.write_text("[stage1]\nk = 5\n")
    with pytest.raises(UsageError) as err:
        load_config(path, stage2={"n": 0})
    assert str(err.value).startswith("stage2.n must be from 1"), err.value


def test_a_nan_config_is_one_line_on_the_command_line(tmp_path):
    path = tmp_path / "search.toml"
    path.write_text("[index]\noversampling = nan\n")
    res = runner.invoke(app, ["collections", "--config", str(path)])
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert "search.toml: config index.oversampling = nan" in res.output


# -- search_reranker.json ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"stage1_weight": NaN}', "stage1_weight should be a finite number"),
        ('{"stage1_weight": 1e999}', "stage1_weight should be a finite number"),
        ('{"stage1_weight": "1"}', "stage1_weight should be a valid number"),
        ('{"stage1_weight": -2}', "stage1_weight must be a number >= 0"),
        ('{"fields": "brand"}', "fields should be a valid list"),
        ('{"fields": ["brand", 3]}', "fields[1] should be a valid string"),
        ('{"text": "zip"}', "unknown text form 'zip'"),
        ('{"stage1_weigth": 1.0}', "unknown key stage1_weigth; did you mean 'stage1_weight'?"),
        ('{"text": ' + DEEP + "}", "nested too deeply"),
        ("[1]", "not a JSON object"),
        ("{not json", "cannot read"),
    ],
)
def test_a_bad_reranker_sidecar_is_one_line(tmp_path, text, says):
    (tmp_path / TEXT_SIDECAR).write_text(text)
    with pytest.raises(UsageError) as err:
        trained_reading(tmp_path)
    line = str(err.value)
    assert str(tmp_path / TEXT_SIDECAR) in line and says in line and "\n" not in line, line


def test_a_good_reranker_sidecar_reads(tmp_path):
    (tmp_path / TEXT_SIDECAR).write_text(
        '{"text": "codes", "fields": ["brand"], "stage1_weight": 1}'
    )
    reading = trained_reading(tmp_path)
    assert (reading.form, reading.fields, reading.stage1_weight) == ("codes", ("brand",), 1.0)


# -- the pair-gbdt sidecar --------------------------------------------------------------


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    pytest.importorskip("lightgbm")
    from training.pair_gbdt import GbdtParams, fit_pair_gbdt

    model = fit_pair_gbdt(
        toy_examples(40, 0), toy_examples(20, 1), GbdtParams(min_data_in_leaf=5, num_boost_round=8)
    )
    return model.save(tmp_path_factory.mktemp("gbdt") / "model.txt")


def edited(model_file, tmp_path, change):
    path = tmp_path / "model.txt"
    shutil.copy(model_file, path)
    meta = json.loads(sidecar_path(model_file).read_text())
    text = change(meta)
    sidecar_path(path).write_text(text if isinstance(text, str) else json.dumps(meta))
    return path


def _set(key, value):
    def change(meta):
        meta[key] = value

    return change


BLEND = {"mean": [0.0], "scale": [1.0], "coef": [1.0], "intercept": 0.0}
CHANGES = {
    "unknown key": (_set("calibraton", {}), "unknown key calibraton; did you mean 'calibration'?"),
    "count as text": (_set("best_iteration", "many"), "best_iteration should be a valid integer"),
    "features as text": (_set("features", "abc"), "features should be a valid list"),
    "nan blend": (_set("blend", {**BLEND, "coef": [float("nan")]}), "blend.coef[0] should be a"),
    "blend key": (_set("blend", {**BLEND, "coeff": [1.0]}), "did you mean 'coef'?"),
    "blend shape": (_set("blend", {**BLEND, "coef": [1.0, 2.0]}), "the blend has 2 weights"),
    "stacked": (_set("stacked", [{"spec": "x"}]), "stacked[0].kind is missing"),
    "calibration": (_set("calibration", {"slope": -1.0, "intercept": 0}), "bad calibration"),
    "deep": (lambda meta: '{"params": ' + DEEP + "}", "nested too deeply"),
}


@pytest.mark.parametrize("name", list(CHANGES))
def test_a_bad_pair_gbdt_sidecar_is_one_line(model_file, tmp_path, name):
    change, says = CHANGES[name]
    path = edited(model_file, tmp_path, change)
    with pytest.raises(UsageError) as err:
        PairGbdtModel.load(path)
    line = str(err.value)
    assert str(sidecar_path(path)) in line and says in line and "\n" not in line, line


def test_the_trained_sidecar_loads(model_file):
    model = PairGbdtModel.load(model_file)
    assert model.info["best_iteration"] >= 1 and model.features


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ({"k": "many"}, "config train.pair-gbdt.k = 'many': expected int"),
        ({"stack_queries": 1.5}, "config train.pair-gbdt.stack_queries = 1.5: expected int"),
        ({"kk": 5}, "unknown config key train.pair-gbdt.kk; did you mean 'k'?"),
    ],
)
def test_a_trainer_table_is_type_checked(table, says):
    import search.train  # noqa: F401  (registers the trainers)
    from search.train.registry import build_options, get_trainer

    with pytest.raises(UsageError, match=re.escape(says)):
        build_options(get_trainer("pair-gbdt", "reranker"), table, {})
