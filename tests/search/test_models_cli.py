"""The issue-11 model families from the command line: ArcFace training of a timm model
loaded back as an encoder, and one-line errors (non-zero exit) for bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from search.cli import app

pytest.importorskip("timm")
runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    from retrieval.data.synth import synthesize

    return synthesize(tmp_path_factory.mktemp("synth") / "data", groups=24, seed=1, image_size=32)


def test_train_timm_arcface_then_index_and_query_with_it(synth, tmp_path):
    out = tmp_path / "arcface"
    res = run(
        "train", "biencoder", str(synth), "--out", str(out), "--kind", "timm", "--loss", "arcface",
        "--model", "test_efficientnet,pretrained=none", "--image-size", "32", "--neck", "16",
        "--epochs", "1", "--batch-size", "8", "--per-group", "2", "--margin-warmup", "2",
        "--data-dir", str(tmp_path / "home"),
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "best epoch 1" in res.output and "precision@1" in res.output
    assert (out / "timm_config.json").is_file()
    home = str(tmp_path / "home")
    res = run("index", str(synth), "--encoder", f"timm:{out},num_workers=0", "--data-dir", home)
    assert res.exit_code == 0, res.output


def test_text_arcface_is_the_text_trainer_with_another_loss(synth, tmp_path):
    pytest.importorskip("sentence_transformers")
    from helpers.tiny_bert import build_tiny_bert

    bert = build_tiny_bert(tmp_path / "bert")
    res = run(
        "train", "biencoder", str(synth), "--out", str(tmp_path / "t"), "--kind", "text",
        "--loss", "arcface", "--model", str(bert), "--batch-size", "8",
        "--per-group", "2", "--data-dir", str(tmp_path / "home"),
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (tmp_path / "t" / "modules.json").is_file()
    res = run(
        "train", "biencoder", str(synth), "--out", str(tmp_path / "u"), "--kind", "text",
        "--loss", "cosface", "--model", "all-MiniLM-L6-v2", "--data-dir", str(tmp_path / "home"),
    )  # fmt: skip
    assert res.exit_code != 0 and "unknown --loss 'cosface' for text" in res.output


def _one_line_failure(*args: str, env: dict | None = None, pre: str = "") -> str:
    """Run the CLI in a subprocess: non-zero exit, one line on stderr, no traceback."""
    code = f"{pre}from search.cli import app; app()"
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    res = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True, text=True, timeout=300, env=full_env, cwd=ROOT,
    )  # fmt: skip
    assert res.returncode != 0
    assert "Traceback" not in res.stderr + res.stdout
    lines = [ln for ln in (res.stderr + res.stdout).splitlines() if ln.strip()]
    return " ".join(lines)


def test_bad_models_are_one_line_errors(synth, tmp_path):
    home = str(tmp_path / "home")
    text = _one_line_failure(
        "index", str(synth), "--encoder", "timm:efficientnet_lit0", "--data-dir", home
    )
    assert "unknown timm model 'efficientnet_lit0'" in text
    import timm
    import torch

    torch.save(timm.create_model("test_resnet").state_dict(), tmp_path / "resnet.pth")
    spec = f"timm:test_efficientnet,pretrained={tmp_path / 'resnet.pth'},key_map=order"
    res = run("index", str(synth), "--encoder", spec, "--data-dir", home)
    assert res.exit_code != 0 and "tensor 0 'conv1.0.weight'" in res.output
    assert len(res.output.strip().splitlines()) <= 2  # one message (wrapped at most once)


def test_flagembedding_missing_names_the_extra(synth, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "FlagEmbedding", None)
    res = run("index", str(synth), "--encoder", "bge-m3", "--data-dir", str(tmp_path / "h"))
    assert res.exit_code != 0
    assert "FlagEmbedding is not installed" in res.output and "[flag]" in res.output
