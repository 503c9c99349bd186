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


def _broken(train, tmp_path, keep_groups=None):
    """``train`` with the photos of two listings truncated (real JPEG bytes cut short) and one
    photo missing; ``keep_groups``: every photo outside those groups broken instead."""
    bad = [p for p in train if keep_groups is not None and p.group not in keep_groups]
    bad = bad or train[:3]
    out, paths = [], {}
    for p in train:
        if p not in bad:
            out.append(p)
            continue
        path = tmp_path / f"{p.id}.jpg"
        if len(paths) % 3 != 2:  # a truncated JPEG; every third one missing altogether
            data = open(p.image_path, "rb").read()
            path.write_bytes(data[: len(data) // 3])
        paths[p.id] = str(path)
        out.append(Product(p.id, p.title, str(path), p.group, p.fields))
    return out, paths


def test_unreadable_photos_are_found_first_and_never_trained_on(
    synth_set, tmp_path, monkeypatch, caplog
):
    import training.timm as timm
    from retrieval.data import images
    from retrieval.encoders import imageloader

    train, valid = _splits(synth_set)
    train, bad = _broken(train, tmp_path)
    valid_bad = tmp_path / "gone.jpg"  # a valid listing whose photo is missing
    valid = [Product(valid[0].id, valid[0].title, str(valid_bad), valid[0].group), *valid[1:]]
    bad[valid[0].id] = str(valid_bad)
    reads, seen, real = [], {}, timm.fit_timm_arcface

    def counted(ref, *a, **k):  # every decode: the check, the trainer and the scoring alike
        reads.append(str(ref))
        return real_load(ref, *a, **k)

    def spy(train, valid, *args, **kwargs):
        seen["train"], seen["valid"] = list(train), list(valid)
        return real(train, valid, *args, **kwargs)

    real_load = images.load_image
    monkeypatch.setattr(images, "load_image", counted)
    monkeypatch.setattr(imageloader, "load_image", counted)
    monkeypatch.setattr(timm, "fit_timm_arcface", spy)
    bars, ticks = [], []

    def bar(label, total):
        bars.append((label, total))
        return ticks.append

    fit = fit_catalogue_image(train, valid, _args(tmp_path / "ft"), bar)
    assert fit.steps_run == 4 and not fit.skipped  # the run finished
    photos = fit.skipped_photos
    assert photos["count"] == photos["listings"] == 4 and set(photos["first"]) == set(bad.values())
    assert any("corrupt image" in why for why in photos["first"].values())
    assert any("No such file" in why for why in photos["first"].values())
    assert not {p.id for p in seen["train"] + seen["valid"]} & set(bad)  # left out of both
    assert {p.id for p in seen["train"]} == {p.id for p in train} - set(bad)
    assert [reads.count(path) for path in bad.values()] == [1] * 4  # read by the check alone
    photos_there = len({p.image_path for p in train + valid})
    assert bars[0] == (f"checking {photos_there} photos", photos_there)
    assert sum(ticks[:photos_there]) == photos_there  # the check's bar ticked once a photo
    (line,) = [r.getMessage() for r in caplog.records if r.name == "training.image_catalogue"]
    assert line.startswith(f"fine-tune image: 4 of {photos_there} train and valid photos do not")
    assert "left out of training and of the valid scoring (4 listings)" in line


def test_so_many_unreadable_photos_that_the_split_is_too_small_trains_nothing(synth_set, tmp_path):
    train, valid = _splits(synth_set)
    keep = {train[0].group}  # the photos of one train group read, no other
    train, bad = _broken(train, tmp_path, keep)
    fit = fit_catalogue_image(train, valid, _args(tmp_path / "ft"))
    assert fit.skipped.startswith("the train split has 1 match groups with images, fewer than")
    assert fit.skipped.endswith(f"({len(bad)} unreadable photos left out)")
    assert fit.skipped_photos["count"] == len(bad) and len(fit.skipped_photos["first"]) == 5
    assert not fit.improved and not (tmp_path / "ft").exists()
