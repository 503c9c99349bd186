"""``[fine_tune] image_neck``: the image fine-tuning trains a fresh BN-dropout-FC neck of that
many dims (the Shopee winners' neck); the fine-tuned folder carries it, a collection's
``image_ft`` vector from it takes its size (the zero-shot ``image`` keeps the backbone's
width), and ``search match`` runs on the matcher; the zero-shot score a run must beat is the
encoder without the fresh neck. A tiny random timm model on the synthetic catalogue."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

pytest.importorskip("timm")

from retrieval.data import open_dataset  # noqa: E402
from retrieval.errors import UsageError  # noqa: E402
from search.cli import app  # noqa: E402
from search.config import load_config  # noqa: E402
from search.evaluation.evaluate import evaluate_dataset  # noqa: E402
from search.match.matcher import Matcher  # noqa: E402

runner = CliRunner()
TINY = "timm:test_efficientnet,pretrained=none,image_size=32,num_workers=0"
NECK = 24  # not the tiny backbone's width, so a vector of this size came from the neck


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from retrieval.data.synth import synthesize

    return synthesize(tmp_path_factory.mktemp("synth") / "data", groups=40, seed=1, image_size=32)


def ft_cfg(tmp_path, **fine_tune):
    table = {"encoders": ["image"], "batch_size": 8, "image_lr": 1e-3, "image_freeze": 0.9}
    table |= {"image_eval_steps": 3, "image_max_steps": 9, "patience": 2}
    return load_config(
        None,
        store={"data_dir": tmp_path / "home"},
        stage1={"encoders": [TINY, "sparse"]},
        fine_tune={**table, **fine_tune},
    )


def test_a_neck_sizes_the_fine_tuned_vector_and_search_match_reads_it(synth, tmp_path):
    from retrieval.index import open_index

    out, home = tmp_path / "run", tmp_path / "home"
    evaluate_dataset(ft_cfg(tmp_path, image_neck=NECK), str(synth), out=out)
    (work,) = (out / "fine-tune").resolve().glob("image-*")
    folder = work / "arcface"  # the best step, saved whether or not it beat zero-shot
    assert json.loads((folder / "timm_config.json").read_text())["neck"] == NECK
    # on this toy the fresh neck loses to the zero-shot vector on valid, so the run keeps
    # zero-shot: the folder goes in as an explicit encoder, the way a winner is indexed
    ft_spec = f"timm:{folder},num_workers=0,name=image_ft"
    cfg = load_config(None, store={"data_dir": home})
    res = evaluate_dataset(cfg, str(synth), encoders=[TINY, ft_spec, "sparse"], out=tmp_path / "e")
    index = open_index("edge", data_dir=home)
    try:
        sizes = {v.name: v.size for v in index.info(res.settings["collection"]).vectors}
    finally:
        index.close()
    assert sizes["image_ft"] == NECK and sizes["image"] not in (None, NECK)
    assert "image_ft" in Matcher.load(res.out / "matcher.json").vectors
    args = ["match", str(synth), "--matcher", str(res.out / "matcher.json")]
    args += ["--data-dir", str(home), "--out", str(tmp_path / "matched")]
    result = runner.invoke(app, args, env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    listings = len(list(open_dataset(str(synth)).products()))
    assert (tmp_path / "matched" / "matches.csv").read_text().count("\n") == listings + 1


def test_the_zero_shot_score_is_the_encoder_without_a_neck(synth, tmp_path):
    from training.image_catalogue import ImageFitArgs, fit_catalogue_image

    products = list(open_dataset(str(synth)).products())
    train = [p for p in products if p.fields["split"] == "train"]
    valid = [p for p in products if p.fields["split"] == "valid"]
    scores = {}
    for neck in (0, NECK):
        args = ImageFitArgs(
            model=TINY.removeprefix("timm:").removesuffix(",num_workers=0"),
            out=tmp_path / str(neck),
            batch_size=8,
            lr=1e-3,
            eval_steps=2,
            max_steps=2,
            freeze=0.9,
            num_workers=0,
            neck=neck,
        )
        scores[neck] = fit_catalogue_image(train, valid, args).zero_shot_f1
    assert scores[NECK] == scores[0]  # a fresh random neck is not the zero-shot encoder


def test_image_neck_out_of_range_is_refused_in_one_line(tmp_path):
    with pytest.raises(UsageError, match=r"fine_tune.image_neck must be from 0 to 65536"):
        ft_cfg(tmp_path, image_neck=-1)
    config = tmp_path / "ft.toml"
    config.write_text("[fine_tune]\nimage_neck = 70000\n")
    result = runner.invoke(app, ["eval", str(tmp_path), "--config", str(config)])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "fine_tune.image_neck must be from 0 to 65536" in " ".join(result.output.split())
