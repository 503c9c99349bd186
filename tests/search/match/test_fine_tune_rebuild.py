"""The command a fine-tuned matcher records to rebuild its encoders (``info.fine_tuned.<vector>
.command``, named by ``search match`` when the folder is gone) carries what shaped the run:
``--config`` (absolute, named even once the file is gone), the store, ``--format``, and each
flag the run gave over the file; run as written, it trains with the same schedule."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from search.config import load_config
from search.evaluation.fine_tune_specs import rebuild_command

runner = CliRunner()


def test_the_command_names_the_config_file_the_store_and_the_flags_given_over_it(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    Path("ft.toml").write_text(
        '[stage1]\nencoders = ["text", "sparse"]\n'  # the defaults, but set by the file
        '[eval]\nmatch_pair = true\ntune_split = "valid"\n'
        "[fine_tune]\nlr = 2e-5\nhard_negatives = 1\n"
    )
    Path("labels.jsonl").write_text("")
    flags = {"match_pair": False, "labels": Path("labels.jsonl"), "match_against": "catalogue"}
    cfg = load_config(
        "ft.toml", store={"data_dir": Path("home")}, eval=flags, fine_tune={"encoders": ["text"]}
    )
    command = rebuild_command(cfg, "data.jsonl", Path("run"), cfg.stage1.encoders, "catalog")
    root = tmp_path.resolve()
    expected = ["search", "eval", str(root / "data.jsonl"), "--fine-tune", "text", "--out"]
    expected += [str(root / "run"), "--resume", "--config", str(root / "ft.toml")]
    expected += ["--data-dir", str(root / "home"), "--format", "catalog"]
    expected += ["--encoder", "text", "--encoder", "sparse"]  # the file set them
    expected += ["--tune-split", "valid", "--match-against", "catalogue"]
    expected += ["--no-match-pair", "--labels", str(root / "labels.jsonl")]  # over the file's
    assert shlex.split(command) == expected

    # no file, the defaults: nothing but what every rebuild names
    monkeypatch.delenv("SEARCH_HOME")
    plain = load_config(None, fine_tune={"encoders": ["text"], "loss": "mnrl"})
    assert shlex.split(rebuild_command(plain, "data.jsonl", Path("run"), ("text", "sparse"))) == [
        *expected[:8],
        "--fine-tune-loss",
        "mnrl",
    ]
    # SEARCH_HOME is named (another shell may not set it); a server by its URL, never a
    # URL holding credentials (QDRANT_URL is read then)
    monkeypatch.setenv("SEARCH_HOME", str(tmp_path / "elsewhere"))
    home = load_config(None, fine_tune={"encoders": ["text"]})
    assert f"--data-dir {root / 'elsewhere'}" in rebuild_command(home, "d", Path("r"))
    server = load_config(None, store={"url": "http://127.0.0.1:6333"})
    assert "--qdrant-url http://127.0.0.1:6333" in rebuild_command(server, "d", Path("r"))
    secret = load_config(None, store={"url": "http://user:pw@127.0.0.1:6333"})
    words = rebuild_command(secret, "d", Path("r"))
    assert "--backend server" in words and "pw" not in words and "--data-dir" not in words


@pytest.mark.slow  # two fine-tunings of MiniLM, ~90 s on 2 cores
def test_a_run_made_with_a_config_file_is_rebuilt_with_its_schedule(minilm, tmp_path, monkeypatch):
    from test_fine_tune import write_siblings

    import training.text_catalogue as fit
    from search.cli import app
    from search.match.matcher import Matcher

    schedules, real = [], fit.fit_catalogue_text

    def spy(queries, by_id, valid, args, *rest):  # the real trainer, its schedule kept
        schedules.append({k: v for k, v in vars(args).items() if k not in ("out", "resume")})
        return real(queries, by_id, valid, args, *rest)

    monkeypatch.setattr(fit, "fit_catalogue_text", spy)
    siblings = write_siblings(tmp_path / "siblings.jsonl")
    config = tmp_path / "ft.toml"  # lr, steps and loss other than the defaults
    config.write_text(
        f'[stage1]\nencoders = ["text:{minilm}", "sparse"]\n[fine_tune]\nbatch_size = 8\n'
        'lr = 1e-4\neval_steps = 3\nmax_steps = 6\npatience = 2\nloss = "mnrl"\n'
    )
    monkeypatch.chdir(tmp_path)  # relative paths on the command line
    args = ["eval", "siblings.jsonl", "--config", "ft.toml", "--data-dir", "home"]
    result = runner.invoke(app, [*args, "--fine-tune", "text", "--out", "run"])
    assert result.exit_code == 0, result.output
    matcher = Matcher.load(tmp_path / "run" / "matcher.json")
    entry = matcher.info["fine_tuned"]["text_ft"]
    words = shlex.split(entry["command"])
    assert words[:2] == ["search", "eval"] and words[2] == str(siblings.resolve())
    at = words.index("--config")
    assert words[at + 1] == str(config.resolve())
    assert words[words.index("--data-dir") + 1] == str((tmp_path / "home").resolve())

    shutil.rmtree(entry["path"])
    config.rename(tmp_path / "ft.toml.away")  # gone too: named all the same, never read
    matched = ["match", str(siblings), "--matcher", "run/matcher.json", "--data-dir", "home"]
    refused = runner.invoke(app, matched, env={"COLUMNS": "400"})
    assert refused.exit_code != 0 and "Traceback" not in refused.output
    line = " ".join(refused.output.split())
    assert f"rebuild it with: {entry['command']}" in line

    (tmp_path / "ft.toml.away").rename(config)
    monkeypatch.chdir(tmp_path.parent)  # the command as written, from another folder
    again = runner.invoke(app, words[1:])
    assert again.exit_code == 0, again.output
    assert len(schedules) == 2 and schedules[1] == schedules[0]  # the same schedule
    assert schedules[0]["lr"] == 1e-4 and schedules[0]["loss"] == "mnrl"
    rebuilt = Matcher.load(tmp_path / "run" / "matcher.json").info["fine_tuned"]["text_ft"]
    assert rebuilt["path"] != entry["path"] and rebuilt["command"] == entry["command"]
    done = json.loads((Path(rebuilt["path"]).parent / "fine-tune.json").read_text())
    assert [e["step"] for e in done["evals"]] == [3, 6][: len(done["evals"])]
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, matched).exit_code == 0
