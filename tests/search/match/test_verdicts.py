"""A reviewer's verdicts in the match decision (``search match --labels``): a match
forced in, a non-match forced out, before group consistency, which never rejoins them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from search.cli import app
from search.match.edges import Edges
from search.match.job import RuleFlags, match_dataset
from search.match.labels import Label, append_label
from search.match.rules import Rule, decide

runner = CliRunner()
AT = "2026-12-06T08:00:00+00:00"


def _both(pairs, scores):
    """Edges both ways of each pair, score ``s`` per pair."""
    src = [i for i, j in pairs] + [j for i, j in pairs]
    dst = [j for i, j in pairs] + [i for i, j in pairs]
    return Edges(np.array(src), np.array(dst), {"s": np.array(scores + scores, dtype=float)})


# a chain 0~1 (0.9), 1~2 (0.8), 2~3 (0.7), and 3~4 far under the threshold (0.2)
CHAIN = _both([(0, 1), (1, 2), (2, 3), (3, 4)], [0.9, 0.8, 0.7, 0.2])


def test_verdicts_force_pairs_in_and_out_of_plain_thresholds():
    rule = Rule("t", {"s": 0.5}, "s")
    assert decide(CHAIN, rule, 6) == {0: {1}, 1: {0, 2}, 2: {1, 3}, 3: {2}}
    got = decide(CHAIN, rule, 6, {(2, 1): False, (3, 4): True, (0, 5): True})
    # 1~2 dropped, 3~4 kept under the threshold, 0~5 (never a candidate) added
    assert got == {0: {1, 5}, 1: {0}, 2: {3}, 3: {2, 4}, 4: {3}, 5: {0}}


@pytest.mark.parametrize("groups", ["components", "agglomerative"])
def test_group_consistency_never_rejoins_a_pair_kept_apart(groups):
    rule = Rule(
        "g", {"s": 0.5}, "s", groups=groups, group_threshold=0.1 if groups[0] == "a" else None
    )
    plain = decide(CHAIN, rule, 5)
    assert 3 in plain[0]  # the chain joins its two ends
    got = decide(CHAIN, rule, 5, {(0, 3): False})
    assert 3 not in got.get(0, ()) and 0 not in got.get(3, ())
    assert 1 in got[0]  # the rest of the chain joins where it may: 3 only through 0's group
    if groups == "components":
        assert got == {0: {1, 2}, 1: {0, 2}, 2: {0, 1}}


def test_min2_does_not_pick_a_pair_kept_apart():
    one = _both([(0, 1), (0, 2)], [0.4, 0.3])
    rule = Rule("t", {"s": 0.9}, "s", min2=0.1)
    assert decide(one, rule, 3)[0] == {1}
    assert decide(one, rule, 3, {(0, 1): False})[0] == {2}  # the next nearest instead


def _matches(res):
    return {d["id"]: {m["id"]: m for m in d["matches"]} for d in map(json.loads, res.jsonl.open())}


def test_match_keeps_the_reviewers_verdicts_and_says_how_many(indexed, sparse_cfg, tmp_path):
    flags = RuleFlags({"sparse": 0.7}, min2=0.3, groups="components", group_cap=8)
    run = lambda **kw: match_dataset(  # noqa: E731
        sparse_cfg, str(indexed), flags=flags, collection="shop", out=tmp_path / "m", **kw
    )
    before = _matches(run())
    a, b = next((a, b) for a, ms in before.items() for b in ms if b > a)  # a matched pair
    assert "x4" not in before["p0-0"]
    labels = tmp_path / "labels.jsonl"
    append_label(labels, Label(a, b, "no_match", AT, "studio"))
    append_label(labels, Label("p0-0", "x4", "match", AT, "studio"))
    append_label(labels, Label("p1-0", "p2-0", "skip", AT, "studio"))
    res = run(labels=labels)
    after = _matches(res)
    assert b not in after[a] and a not in after[b]
    assert after["p0-0"]["x4"]["rule"] == "label" and after["x4"]["p0-0"]["label"] == "match"
    note = next(n for n in res.notes if n.startswith("labels:"))
    assert "2 reviewed verdicts kept; 1 pair(s) matched and 1 kept apart" in note
    manifest = json.loads((tmp_path / "m" / "run.json").read_text())
    assert manifest["labels"] == str(labels)
    edges = {(e["a"], e["b"]): e for e in map(json.loads, (tmp_path / "m" / "edges.jsonl").open())}
    assert not edges[tuple(sorted((a, b)))]["matched"]


def test_cli_match_labels_bad_input_is_one_line(indexed, tmp_path):
    home = ["--data-dir", str(tmp_path / "home"), "-c", "shop", "-t", "sparse=0.7"]
    labels = tmp_path / "labels.jsonl"
    append_label(labels, Label("p0-0", "p0-1", "match", AT, "studio"))
    append_label(labels, Label("p0-0", "nobody", "match", AT, "studio"))
    cmd = ["match", str(indexed), *home, "--labels", str(labels), "--out", str(tmp_path / "o")]
    res = runner.invoke(app, cmd)
    assert res.exit_code == 1 and f"{labels}:2: unknown listing id 'nobody'" in res.output
    assert len(res.output.strip().splitlines()) == 1
    labels.write_text("")
    append_label(labels, Label("p0-0", "p0-1", "match", AT, "studio"))
    append_label(labels, Label("p0-1", "p0-0", "no_match", AT, "review"))
    res = runner.invoke(app, cmd)
    assert res.exit_code == 1 and f"{labels}:2: 'no_match' for 'p0-1'-'p0-0' contradicts" in (
        res.output
    )
    res = runner.invoke(app, [*cmd[:-4], "--labels", str(tmp_path / "none.jsonl")])
    assert res.exit_code == 2 and "no labels file" in res.output
