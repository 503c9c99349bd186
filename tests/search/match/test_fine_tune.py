"""``search eval --fine-tune text``: the packaged MiniLM fine-tuned on the train groups only, its
step chosen on valid, its vector indexed beside the zero-shot one, the matcher recording
the folder; resume, a deleted folder, and the inputs that cannot be fine-tuned on."""

from __future__ import annotations

import json
import random

import pytest
from typer.testing import CliRunner

pytest.importorskip("sentence_transformers")

from retrieval.data import open_dataset  # noqa: E402
from retrieval.errors import UsageError  # noqa: E402
from search.cli import app  # noqa: E402
from search.config import load_config  # noqa: E402
from search.evaluation.evaluate import evaluate_dataset  # noqa: E402
from search.match.matcher import Matcher  # noqa: E402

runner = CliRunner()


FILLER = "new original promo sale cheap fast free shipping gift black white blue red pack set kit"


def write_siblings(path, groups: int = 80, seed: int = 0):
    """Groups told apart by a model number alone among sibling titles of filler words:
    the zero-shot MiniLM confuses siblings (valid F1 0.75), a few steps fix it (1.0)."""
    rng = random.Random(seed)
    rows = []
    for g in range(groups):
        brand, kind = rng.choice(["samsung", "sony", "bose"]), rng.choice(["phone", "speaker"])
        code = str(rng.randint(10, 99))
        for i in range(rng.randint(2, 4)):
            words = [brand, kind, code, *rng.sample(FILLER.split(), 3)]
            rng.shuffle(words)
            rows.append({"id": f"p{g}-{i}", "title": " ".join(words), "group": f"g{g}"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def siblings(tmp_path):
    return write_siblings(tmp_path / "siblings.jsonl")


def ft_cfg(model, tmp_path, **fine_tune):
    table = {"encoders": ["text"], "batch_size": 8, "lr": 1e-4, "eval_steps": 3}
    return load_config(
        None,
        store={"data_dir": tmp_path / "home"},
        stage1={"encoders": [f"text:{model}", "sparse"]},
        fine_tune={**table, "max_steps": 6, "patience": 2, **fine_tune},
    )


def scores(metrics):
    """The metrics that do not depend on the clock."""
    return {k: v for k, v in metrics.items() if "f1" in k or "recall" in k}


def test_both_losses_tried_the_better_on_valid_beside_the_zero_shot_vector(
    siblings, minilm, tmp_path, monkeypatch
):
    import training.arcface_text as arc
    import training.text_catalogue as fit

    seen = {}
    real, real_arc = fit.train_text_biencoder, arc.fit_text_arcface

    def spy(rows, *args, **kwargs):  # the real trainer, its rows kept for the check
        seen["texts"] = set(rows.columns["anchor"]) | set(rows.columns["positive"])
        return real(rows, *args, **kwargs)

    def spy_arc(train, valid, *args, **kwargs):  # the real ArcFace trainer, its titles kept
        seen["arcface"] = {p.title for p in [*train, *valid]}
        return real_arc(train, valid, *args, **kwargs)

    monkeypatch.setattr(fit, "train_text_biencoder", spy)
    monkeypatch.setattr(arc, "fit_text_arcface", spy_arc)
    told = []
    out = tmp_path / "run"
    res = evaluate_dataset(ft_cfg(minilm, tmp_path), str(siblings), out=out, announce=told.append)
    (work,) = (out / "fine-tune").resolve().glob("text-*")
    done = json.loads((work / "fine-tune.json").read_text())
    assert set(done["curves"]) == {"mnrl", "arcface"}
    for loss, curve in done["curves"].items():  # each scored on valid every 3 steps
        steps = [e["step"] for e in curve["evals"]]
        assert steps == [3, 6][: len(steps)] and curve["best_step"] in steps, loss
        best = max(curve["evals"], key=lambda e: e["eval_valid_match_f1"])
        assert curve["best_f1"] == pytest.approx(best["eval_valid_match_f1"])
        assert not (work / loss / "checkpoints").exists()  # the best step alone is kept
    winner = max(done["curves"].values(), key=lambda c: c["best_f1"])
    assert done["loss"] == winner["loss"] and done["best_f1"] == winner["best_f1"]
    assert done["evals"] == winner["evals"] and done["best_step"] == winner["best_step"]
    (loser,) = set(done["curves"]) - {done["loss"]}  # its curve kept, its model deleted
    assert [p.name for p in (work / loser).iterdir()] == ["fit.json"]
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(work / done["loss"]), device="cpu")  # the winner loads
    assert model.encode(["samsung phone 42"]).shape == (1, 384)
    split = {p.title: p.fields["split"] for p in open_dataset(str(siblings)).products()}
    for texts in (seen["texts"], seen["arcface"]):
        assert texts and {split[t] for t in texts} == {"train"}
    assert done["improved"] and done["best_f1"] > done["zero_shot_f1"]
    matcher = Matcher.load(res.out / "matcher.json")
    path = work / done["loss"]
    assert f"text:{path},name=text_ft" in matcher.encoders and "text_ft" in matcher.vectors
    assert "text" in matcher.vectors  # the zero-shot vector stays beside it
    assert matcher.info["fine_tuned"]["text_ft"]["path"] == str(path)
    assert matcher.info["fine_tuned"]["text_ft"]["loss"] == done["loss"]
    assert res.metrics["match/text_ft/valid_f1"] > res.metrics["match/text/valid_f1"]
    # each loss announced before its run, with its measured step time
    assert [(t.loss, t.later) for t in told] == [("mnrl", ("arcface",)), ("arcface", ())]
    listings = len(list(open_dataset(str(siblings)).products()))
    assert all(t.steps == 2 and t.step_seconds > 0 and t.listings == listings for t in told)
    line = told[0].line()
    assert line.startswith("fine-tuning text (mnrl): at most 2 steps x ")
    assert "s/step (measured)" in line and f"then indexing ~{listings:,} listings" in line
    assert any(n.startswith(f"fine-tune text: loss {done['loss']}, step") for n in res.notes)


def test_resume_reuses_the_finished_phase_and_a_deleted_folder_is_named(
    siblings, minilm, tmp_path, monkeypatch
):
    cfg = ft_cfg(minilm, tmp_path)
    out = tmp_path / "run"
    first = evaluate_dataset(cfg, str(siblings), out=out)
    with pytest.raises(UsageError, match="already holds a fine-tuned text encoder.*--resume"):
        evaluate_dataset(cfg, str(siblings), out=out)
    import training.arcface_text as arc
    import training.text_catalogue as fit

    monkeypatch.setattr(fit, "train_text_biencoder", lambda *a, **k: pytest.fail("trained"))
    monkeypatch.setattr(arc, "fit_text_arcface", lambda *a, **k: pytest.fail("trained"))
    (work,) = (out / "fine-tune").glob("text-*")
    done = json.loads((work / "fine-tune.json").read_text())
    (loser,) = set(done["curves"]) - {done["loss"]}
    (work / loser / "model.safetensors").write_bytes(b"left by a kill")  # before the prune
    again = evaluate_dataset(ft_cfg(minilm, tmp_path, resume=True), str(siblings), out=out)
    assert scores(again.metrics) == scores(first.metrics)  # the loser's model never read
    assert [p.name for p in (work / loser).iterdir()] == ["fit.json"]  # pruned on the reuse
    import shutil

    shutil.rmtree(work)
    from search.evaluation.fine_tune import work_folder

    # a rebuild trains into a new folder: a new spec, so a new collection (no stale vectors)
    assert work_folder(out).name.startswith("text-") and work_folder(out) != work.resolve()
    home = str(tmp_path / "home")
    result = runner.invoke(
        app, ["match", str(siblings), "--matcher", str(out / "matcher.json"), "--data-dir", home]
    )
    assert result.exit_code != 0 and "Traceback" not in result.output
    line = " ".join(result.output.split())
    assert "fine-tuned encoder 'text_ft'" in line and "is missing" in line
    assert "rebuild it with: search eval" in line and "--fine-tune text" in line


def test_a_split_too_small_for_a_batch_keeps_the_zero_shot_encoders(siblings, minilm, tmp_path):
    cfg = ft_cfg(minilm, tmp_path, batch_size=500)
    res = evaluate_dataset(cfg, str(siblings), out=tmp_path / "run")
    assert any(
        "skipped, zero-shot kept" in n and "fewer than a batch of 500" in n for n in res.notes
    )
    assert "text_ft" not in Matcher.load(res.out / "matcher.json").vectors


def test_inputs_that_cannot_be_fine_tuned_on(siblings, minilm, tmp_path):
    rows = [json.loads(line) for line in siblings.read_text().splitlines()]
    flat = tmp_path / "flat.jsonl"
    flat.write_text("".join(json.dumps({"id": r["id"], "title": r["title"]}) + "\n" for r in rows))
    cfg = ft_cfg(minilm, tmp_path)
    with pytest.raises(UsageError, match="trains on match groups.*has none"):
        evaluate_dataset(cfg, str(flat), out=tmp_path / "a")
    with pytest.raises(UsageError, match="--fine-tune image: .* has no images"):
        evaluate_dataset(ft_cfg(minilm, tmp_path, encoders=["image"]), str(siblings))
    with pytest.raises(UsageError, match="--resume needs --out"):
        evaluate_dataset(ft_cfg(minilm, tmp_path, resume=True), str(siblings))
    with pytest.raises(UsageError, match="cannot fine-tune 'sound'; known: text, image"):
        ft_cfg(minilm, tmp_path, encoders=["sound"])
    home = str(tmp_path / "home")
    result = runner.invoke(
        app,
        [
            "eval",
            str(flat),
            "--fine-tune",
            "text",
            "--data-dir",
            home,
            "--out",
            str(tmp_path / "b"),
        ],
    )
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "has none" in " ".join(result.output.split())


@pytest.mark.slow
def test_a_run_killed_while_fine_tuning_resumes_from_its_checkpoint(
    siblings, minilm, tmp_path, killed_and_resumed
):
    import os
    import sys

    config = tmp_path / "ft.toml"
    config.write_text(
        f'[stage1]\nencoders = ["text:{minilm}", "sparse"]\n'
        "[fine_tune]\nbatch_size = 8\nlr = 1e-4\neval_steps = 3\nmax_steps = 30\npatience = 2\n"
    )
    out = tmp_path / "run"
    env = {**os.environ, "SEARCH_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "search.cli", "-v", "eval", str(siblings), "--config"]
    cmd += [str(config), "--fine-tune", "text", "--out", str(out)]
    marker = "text-*/mnrl/checkpoints/checkpoint-3/checkpoint-complete.json"
    ready = lambda: any((out / "fine-tune").glob(marker))  # noqa: E731
    _, stderr, done = killed_and_resumed(cmd, env, ready, out, "text-*")
    assert "resuming from" in stderr and "checkpoint-" in stderr  # the same folder, gone on
    assert done["evals"][0]["step"] == 3  # the killed run's evaluation, kept in its state
    assert "text_ft" in Matcher.load(out / "matcher.json").vectors


def test_the_cli_prints_the_estimate_before_the_run_and_takes_one_loss(siblings, minilm, tmp_path):
    config = tmp_path / "ft.toml"
    config.write_text(
        f'[stage1]\nencoders = ["text:{minilm}", "sparse"]\n'
        "[fine_tune]\nbatch_size = 8\nlr = 1e-4\neval_steps = 3\nmax_steps = 6\npatience = 2\n"
    )
    home, out = str(tmp_path / "home"), tmp_path / "run"
    args = ["eval", str(siblings), "--config", str(config), "--data-dir", home]
    bad = runner.invoke(app, [*args, "--fine-tune", "text", "--fine-tune-loss", "cosine"])
    assert bad.exit_code != 0 and "Traceback" not in bad.output
    assert "fine_tune.loss 'cosine' is unknown; known: mnrl, arcface, best" in bad.output
    args += ["--fine-tune", "text", "--fine-tune-loss", "arcface", "--out", str(out)]
    result = runner.invoke(app, args, env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    listings = len(list(open_dataset(str(siblings)).products()))
    (line,) = [x for x in result.output.splitlines() if x.startswith("fine-tuning text (")]
    assert line.startswith("fine-tuning text (arcface): at most 2 steps x ")
    assert line.endswith(f"then indexing ~{listings:,} listings, then tuning")
    (work,) = (out / "fine-tune").glob("text-*")
    done = json.loads((work / "fine-tune.json").read_text())
    assert list(done["curves"]) == ["arcface"] and done["loss"] == "arcface"


def test_a_run_killed_in_its_arcface_run_resumes_there_and_keeps_the_finished_mnrl(
    siblings, minilm, tmp_path, monkeypatch, kill_at_step
):
    import training.arcface_text as arc
    import training.text_catalogue as fit

    Killed, real = kill_at_step(arc, "fit_text_arcface", 4)
    out = tmp_path / "run"
    with pytest.raises(Killed):
        evaluate_dataset(ft_cfg(minilm, tmp_path), str(siblings), out=out)
    (work,) = (out / "fine-tune").glob("text-*")
    assert (work / "mnrl" / "fit.json").is_file() and not (work / "fine-tune.json").exists()
    assert [p.name for p in (work / "arcface" / "checkpoints").glob("step-*")] == ["step-3"]
    monkeypatch.setattr(arc, "fit_text_arcface", real)
    monkeypatch.setattr(fit, "train_text_biencoder", lambda *a, **k: pytest.fail("mnrl again"))
    evaluate_dataset(ft_cfg(minilm, tmp_path, resume=True), str(siblings), out=out)
    done = json.loads((work / "fine-tune.json").read_text())
    arcface = done["curves"]["arcface"]
    assert [e["step"] for e in arcface["evals"]] == [3, 6]  # step 3's evaluation kept
    assert arcface["steps_run"] == 6 and set(done["curves"]) == {"mnrl", "arcface"}
