"""Issue 10, items 11, 12, 13 and 14 (CLI side): every count flag is bounded by typer
(usage error, exit 2, no traceback), config values are type-checked, and a folder or a
binary file as --config, an over-long collection name or a read-only data dir is one line."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from helpers.viewer import one_line_error
from typer.testing import CliRunner

from search.cli import app

runner = CliRunner()


@pytest.fixture
def indexed(tmp_path):
    catalog = tmp_path / "shop.jsonl"
    rows = [{"id": f"p{i}", "title": f"red shoe {i}", "group": f"g{i % 3}"} for i in range(12)]
    rows.append(rows[0])  # a repeated id: skipped, and counted
    catalog.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = runner.invoke(app, ["index", str(catalog), "-e", "sparse"])
    assert res.exit_code == 0, res.output
    return catalog, res.output


def usage_error(args, option):
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert (
        "Traceback" not in res.output
        and res.exception is None
        or isinstance(res.exception, SystemExit)
    )
    assert option in res.output
    return res


@pytest.mark.parametrize(
    ("flags", "option"),
    [
        (["--top-k", "-5"], "--top-k"),
        (["--top-k", "0"], "--top-k"),
        (["--top-k", "12345678901234567890"], "--top-k"),
        (["--n", "-3", "--reranker", "pair-gbdt:m.txt"], "--n"),
        (["--n", "0", "--reranker", "pair-gbdt:m.txt"], "--n"),
        (["--k", "0", "--reranker", "pair-gbdt:m.txt"], "--k"),
        (["--hnsw-ef", "0"], "--hnsw-ef"),
    ],
)
def test_query_counts_are_bounded(indexed, flags, option):
    usage_error(["query", "red shoe", *flags], option)


@pytest.mark.parametrize("size", ["0", "-1", "99999999999999999999"])
def test_index_batch_size_is_bounded(indexed, size):
    catalog, _ = indexed
    usage_error(["index", str(catalog), "-e", "sparse", "--batch-size", size], "--batch-size")


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["eval", "x", "--k", "0"], "--k"),
        (["eval", "x", "--n", "-1"], "--n"),
        (["eval", "x", "--blend", "2"], "--blend"),
        (["eval", "x", "--batch-size", "0"], "--batch-size"),
        (["mine", "x", "--out", "o.jsonl", "--negatives", "0"], "--negatives"),
        (["data", "synth", "o", "--groups", "0"], "--groups"),
        (["train", "reranker", "x", "--out", "o", "--k", "0"], "--k"),
        (["train", "biencoder", "x", "--out", "o", "--batch-size", "-1"], "--batch-size"),
    ],
)
def test_other_commands_counts_are_bounded(args, option):
    usage_error(args, option)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[stage1]\nk = "many"\n', "stage1.k = 'many': expected int"),
        ("[stage1]\nk = 0\n", "stage1.k must be from 1"),
        ('[stage1]\nencoders = "text"\n', "expected a list of str"),
        ("[stage2]\nn = 10000000000000000000000\n", "stage2.n must be from 1"),
        ("stage1 = 3\n", "must be a table"),
    ],
)
def test_config_values_are_type_checked(indexed, tmp_path, toml, message):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    assert message in one_line_error(runner.invoke(app, ["query", "red", "--config", str(cfg)]))


def test_config_that_is_a_folder_or_binary_is_one_line(indexed, tmp_path):
    assert "is a folder" in one_line_error(
        runner.invoke(app, ["collections", "--config", str(tmp_path)])
    )
    binary = tmp_path / "model.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    assert "not UTF-8" in one_line_error(
        runner.invoke(app, ["collections", "--config", str(binary)])
    )


def test_overlong_collection_name_is_one_line(indexed):
    catalog, _ = indexed
    res = runner.invoke(app, ["index", str(catalog), "-e", "sparse", "-c", "x" * 300])
    assert "bad collection name" in one_line_error(res)
    res = runner.invoke(app, ["query", "red", "-c", "x" * 300])
    assert "bad collection name" in one_line_error(res)


@pytest.fixture
def readonly_dir(tmp_path):
    """A folder nobody may write to: chmod for a user, a read-only tmpfs for root."""
    path = tmp_path / "ro"
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
        return
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=512m", "tmpfs", str(path)]
    ).returncode:
        pytest.skip("root, and no read-only tmpfs can be mounted here")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)])


def test_new_collection_in_a_read_only_data_dir_is_one_line(indexed, readonly_dir):
    catalog, _ = indexed
    res = runner.invoke(
        app, ["index", str(catalog), "-e", "sparse", "--data-dir", str(readonly_dir)]
    )
    line = one_line_error(res, 1)
    assert "cannot create collection 'shop'" in line and "not writable" in line


def test_index_summary_counts_the_skipped_repeated_id(indexed):
    _, output = indexed
    assert "1 duplicate ids" in " ".join(output.split())  # rich wraps at 80 columns
