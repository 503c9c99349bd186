"""A collection whose encoder folder was deleted: ``search query``, the viewer's model cache
and ``search index`` over it name the folder in one line, with the command that rebuilds
it where the collection records one (``search eval --fine-tune`` does:
``retrieval.encoders.folders``), instead of the model loader's own message."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

pytest.importorskip("sentence_transformers")

from retrieval.errors import UsageError  # noqa: E402
from search.cli import app  # noqa: E402
from search.config import load_config  # noqa: E402
from search.match.matcher import Matcher  # noqa: E402
from search.query import ModelCache, query  # noqa: E402

runner = CliRunner()


def one_line(result) -> str:
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    return " ".join(result.output.split())


def test_query_on_a_fine_tuned_collection_names_the_gone_folder_and_its_rebuild(minilm, tmp_path):
    from test_fine_tune import write_siblings

    siblings = write_siblings(tmp_path / "siblings.jsonl")
    config = tmp_path / "ft.toml"  # three steps: MiniLM's valid F1 0.85 -> 1.0 on siblings
    config.write_text(
        f'[stage1]\nencoders = ["text:{minilm}", "sparse"]\n[fine_tune]\nbatch_size = 8\n'
        "lr = 1e-4\neval_steps = 3\nmax_steps = 3\npatience = 1\n"
    )
    home, out = str(tmp_path / "home"), tmp_path / "run"
    args = ["eval", str(siblings), "--config", str(config), "--data-dir", home, "--out", str(out)]
    done = runner.invoke(app, [*args, "--fine-tune", "text", "--fine-tune-loss", "mnrl"])
    assert done.exit_code == 0, done.output
    matcher = Matcher.load(out / "matcher.json")
    entry, collection = matcher.info["fine_tuned"]["text_ft"], matcher.info["collection"]
    asked = ["query", "samsung phone 42", "--collection", collection, "--data-dir", home]
    assert runner.invoke(app, asked).exit_code == 0  # the folder is there: it answers

    shutil.rmtree(entry["path"])
    line = one_line(runner.invoke(app, asked, env={"COLUMNS": "400"}))
    assert f"collection '{collection}' was indexed with the encoder 'text_ft'" in line
    assert f"of folder {entry['path']}, which is gone" in line
    assert line.endswith(f"rebuild it with: {entry['command']}")  # what matcher.json names too
    assert "cannot load text model" not in line

    # the viewer's long-lived model cache, and indexing again with the stored specs
    cfg = load_config(None, store={"data_dir": tmp_path / "home"})
    with pytest.raises(UsageError, match="rebuild it with: search eval"):
        query(cfg, "samsung phone 42", collection=collection, models=ModelCache())
    again = ["index", str(siblings), "--collection", collection, "--data-dir", home]
    again += [w for spec in matcher.encoders for w in ("--encoder", spec)]
    line = one_line(runner.invoke(app, again, env={"COLUMNS": "400"}))
    assert f"{entry['path']}, which is gone; rebuild it with: {entry['command']}" in line


def test_a_hand_indexed_folder_that_is_gone_is_named_without_a_command(tmp_path):
    pytest.importorskip("transformers")
    from helpers.tiny_bert import build_tiny_bert
    from sentence_transformers import SentenceTransformer, models

    bert = build_tiny_bert(tmp_path / "bert")
    folder = tmp_path / "tiny-st"
    modules = [models.Transformer(str(bert)), models.Pooling(32, "mean")]
    SentenceTransformer(modules=modules, device="cpu").save(str(folder))
    rows = [{"id": f"p{i}", "title": t} for i, t in enumerate(["nike air zoom", "usb cable"])]
    data = tmp_path / "shop.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    home = str(tmp_path / "home")
    made = ["index", str(data), "--encoder", f"text:{folder},device=cpu", "--data-dir", home]
    assert runner.invoke(app, made).exit_code == 0

    shutil.rmtree(folder)
    asked = ["query", "nike", "--data-dir", home]
    line = one_line(runner.invoke(app, asked, env={"COLUMNS": "400"}))
    assert f"collection 'shop' was indexed with the encoder 'text' of folder {folder}" in line
    assert "which is gone; no command to rebuild it is recorded" in line
