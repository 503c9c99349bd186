"""``training.image_catalogue``: the image fine-tuning of ``search eval --fine-tune image`` on
the synthetic catalogue with a tiny random timm model: scored on valid's match F1 every
``eval_steps`` from the zero-shot start, ``fit.json`` written last and reused, and the splits
it refuses to train on."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("timm")

from retrieval.data import open_dataset  # noqa: E402
from retrieval.types import Product  # noqa: E402
from training.image_catalogue import ImageFitArgs, fit_catalogue_image, match_f1, too_small  # noqa: E402

MODEL = "test_efficientnet,pretrained=none,image_size=32"


def _splits(synth_set):
    products = list(open_dataset(str(synth_set)).products())
    train = [p for p in products if p.fields.get("split") == "train"]
    valid = [p for p in products if p.fields.get("split") == "valid"]
    return train, valid


def _args(out, **kw):
    values = dict(batch_size=8, lr=1e-3, eval_steps=2, max_steps=4, patience=2, freeze=0.9)
    return ImageFitArgs(model=MODEL, out=out, num_workers=0, **{**values, **kw})


def test_scored_on_valid_from_the_zero_shot_start_and_a_finished_run_reused(
    synth_set, tmp_path, monkeypatch
):
    train, valid = _splits(synth_set)
    fit = fit_catalogue_image(train, valid, _args(tmp_path / "ft"))
    assert fit.loss == "arcface" and fit.path == str(tmp_path / "ft" / "arcface")
    assert [e["step"] for e in fit.evals] == [2, 4] and fit.steps_run == 4
    assert fit.best_f1 == max(e["eval_valid_match_f1"] for e in fit.evals)
    assert 0 < fit.zero_shot_f1 <= 1 and fit.improved == (fit.best_f1 > fit.zero_shot_f1)
    done = json.loads((tmp_path / "ft" / "arcface" / "fit.json").read_text())
    assert done["best_step"] == fit.best_step and done["step_seconds"] > 0
    assert (tmp_path / "ft" / "arcface" / "timm_config.json").is_file()  # the best step's model
    import training.timm as timm

    monkeypatch.setattr(timm, "fit_timm_arcface", lambda *a, **k: pytest.fail("trained"))
    again = fit_catalogue_image(train, valid, _args(tmp_path / "ft", resume=True))
    assert again.curves == fit.curves  # fit.json read back, nothing trained


def test_splits_too_small_train_nothing_and_say_why(synth_set, tmp_path):
    train, valid = _splits(synth_set)
    groups = len({p.group for p in train})
    fit = fit_catalogue_image(train, valid, _args(tmp_path / "a", batch_size=4 * groups + 4))
    assert fit.skipped.startswith(f"the train split has {groups} match groups with images")
    assert not fit.improved and not (tmp_path / "a").exists()
    assert "valid split has 1 grouped listings with images" in too_small(
        train, valid[:1], _args("")
    )
    photo_less = [Product(p.id, p.title, None, p.group, p.fields) for p in train]
    assert "has 0 match groups with images" in too_small(photo_less, valid, _args(""))


def test_match_f1_of_the_image_cosine_by_hand():
    # two groups of two: each vector nearest its mate, so some threshold matches exactly
    vecs = np.array([[1, 0], [0.96, 0.28], [0, 1], [0.28, 0.96]], dtype=np.float32)
    listings = [Product(str(i), "", None, g) for i, g in enumerate("aabb")]
    assert match_f1(listings, vecs)["valid_match_f1"] == pytest.approx(1.0)
