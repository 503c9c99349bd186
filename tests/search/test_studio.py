"""The match studio without a browser: a hand-written run folder (issue 24's contract: a
catalogue of six listings in three true products, one false merge and two false splits)
read into groups, the explain view's waterfall and stage-1 margin, and the real server's
answers: labels saved (a changed verdict ``revises``), a label POST from another origin
refused with 403, a folder that is not a run one line from the CLI and a 4xx page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.viewer import one_line_error, request, running
from typer.testing import CliRunner

from search.cli import app
from search.match.labels import read_labels
from search.web.server import serve_run
from search.web.studio_data import RunRefused, load_run
from search.web.studio_groups import Groups
from search.web.studio_pair import OTHER, explain, waterfall

# true products: g1 = a, b, c; g2 = d, e; f alone (group null)
LISTINGS = [("a", "g1"), ("b", "g1"), ("c", "g1"), ("d", "g2"), ("e", "g2"), ("f", None)]
CONTRIB = {"char_cos": 1.5, "number_conflict": -0.25, "rest": 0.125, "bias": -0.5, "logit": 0.875}
EDGES = [
    {"a": "a", "b": "b", "score": 0.9, "matched": True, "rule": "pair", "contrib": CONTRIB},
    {"a": "b", "b": "d", "score": 0.7, "matched": True, "rule": "text", "margin": 0.05},
    {"a": "a", "b": "c", "score": 0.4, "matched": False, "rule": None},  # a false split
    {"a": "d", "b": "e", "score": 0.3, "matched": False, "rule": None},  # a false split
    {"a": "e", "b": "f", "score": 0.1, "matched": False, "rule": None},
]


def write_run(folder: Path, fmt: int = 1) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"format": fmt, "kind": "match", "primary": "pair", "threshold": 0.5}
    meta |= {"thresholds": {"pair": 0.5, "text": 0.85}, "labelled": True, "source": None}
    (folder / "run.json").write_text(json.dumps(meta))
    rows = [
        {"id": i, "title": f"listing {i}", "image": None, "price": "9.99", "group": g}
        for i, g in LISTINGS
    ]
    (folder / "listings.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    edges = [{**e, "scores": {"pair": e["score"], "text": e["score"] + 0.2}} for e in EDGES]
    (folder / "edges.jsonl").write_text("".join(json.dumps(e) + "\n" for e in edges))
    return folder


def test_groups_mark_the_false_merge_and_the_false_splits(tmp_path):
    groups = Groups(load_run(write_run(tmp_path / "run")))
    assert groups.groups[0] == ["a", "b", "d"]  # biggest first; c, e, f alone
    g = groups.group(0)
    assert (g["merged"], g["split"]) == (1, 1)  # d merged in; c split off
    assert [c["id"] for c in g["listings"] if c["wrong"]] == ["d"]
    assert [(c["id"], c["missing"]) for c in g["truth"]["listings"]] == [
        ("a", False),
        ("b", False),
        ("c", True),
    ]
    assert {(e["a"], e["b"]): e["error"] for e in g["inside"]} == {
        ("a", "b"): None,
        ("b", "d"): "false merge",
    }
    assert {(e["a"], e["b"]): e["error"] for e in g["refused"]} == {
        ("a", "c"): "false split",
        ("d", "e"): "false split",
    }
    assert groups.page(q="d")["groups"][0]["group"] == 0  # by id
    assert groups.page(errors=True)["total"] == 3  # the merge, and c and e split off
    hist = groups.histogram()
    assert sum(hist["matched"]) == 2 and sum(hist["refused"]) == 3


def test_waterfall_adds_up_to_the_logit_and_a_rule_shows_its_margin(tmp_path):
    run = load_run(write_run(tmp_path / "run"))
    pair_edge, rule_edge = run.edges[0], run.edges[1]
    w = explain(pair_edge, run.meta)["waterfall"]
    assert [s["name"] for s in w["steps"]] == ["bias", "char_cos", "number_conflict", OTHER]
    assert sum(s["value"] for s in w["steps"]) == pytest.approx(0.875, abs=1e-12)
    assert w["steps"][-1]["end"] == pytest.approx(0.875, abs=1e-12)
    assert w["probability"] == pytest.approx(1 / (1 + 2.718281828459045**-0.875))
    stage1 = explain(rule_edge, run.meta)["stage1"]
    assert stage1 == {
        "vector": "text",
        "score": pytest.approx(0.9),
        "threshold": 0.85,
        "margin": 0.05,
    }
    # without a kept "rest", what the kept steps leave is one step to the logit
    assert waterfall({"x": 1.0, "bias": 0.0, "logit": 1.5})["steps"][-1]["value"] == 0.5


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda f: (f / "run.json").unlink(), "not a match run"),
        (lambda f: write_run(f, fmt=2), "format 2"),
        (lambda f: (f / "edges.jsonl").write_text('{"a": "a", "b": "zz"}\n'), "edges.jsonl:1"),
        (lambda f: (f / "listings.jsonl").write_text("[1]\n"), "listings.jsonl:1"),
    ],
)
def test_a_folder_that_is_not_a_run_is_one_line(tmp_path, damage, words):
    folder = write_run(tmp_path / "run")
    damage(folder)
    with pytest.raises(RunRefused, match=words):
        load_run(folder)
    res = CliRunner().invoke(app, ["serve", "--run", str(folder), "--port", "0"])
    assert words in one_line_error(res)


@pytest.fixture
def site(tmp_path):
    folder = write_run(tmp_path / "run")
    with running(serve_run(folder, port=0)) as (host, port):
        yield (host, port), folder


def test_labels_are_saved_and_a_change_of_mind_revises(site):
    addr, folder = site
    status, _, body = request(addr, "POST", "/api/labels", {"a": "b", "b": "a", "verdict": "match"})
    assert status == 200, body
    status, _, body = request(
        addr, "POST", "/api/labels", {"a": "a", "b": "b", "verdict": "no_match"}
    )
    assert status == 200 and json.loads(body)["label"]["revises"] is True
    labels = read_labels(folder / "labels.jsonl", set("abcdef"))
    assert labels[("a", "b")].verdict == "no_match" and labels[("a", "b")].source == "studio"
    status, _, body = request(addr, "GET", "/api/labels")
    assert [lab["verdict"] for lab in json.loads(body)["labels"]] == ["no_match"]
    for bad, code in [
        ({"a": "a", "b": "zz", "verdict": "match"}, 400),  # unknown id
        ({"a": "a", "b": "b", "verdict": "maybe"}, 400),
        ({"a": "a", "b": "f", "verdict": "match"}, 404),  # not a candidate pair
    ]:
        status, _, body = request(addr, "POST", "/api/labels", bad)
        assert status == code and list(json.loads(body)) == ["error"], body
    assert len((folder / "labels.jsonl").read_text().splitlines()) == 2


def test_a_label_from_another_origin_is_refused(site):
    addr, folder = site
    label = {"a": "a", "b": "b", "verdict": "match"}
    for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        status, _, body = request(addr, "POST", "/api/labels", label, headers)
        assert status == 403, body
    assert not (folder / "labels.jsonl").exists()


def test_a_run_replaced_under_the_server_answers_4xx(site):
    addr, folder = site
    assert request(addr, "GET", "/")[0] == 200
    write_run(folder, fmt=7)
    status, headers, body = request(addr, "GET", "/")
    assert status == 400 and b"format 7" in body and headers["content-type"].startswith("text/html")
    status, _, body = request(addr, "GET", "/api/studio")
    assert status == 400 and "format 7" in json.loads(body)["error"]


def test_images_not_named_by_the_run_are_refused(site):
    addr, _ = site
    status, _, body = request(addr, "GET", "/api/image?ref=/etc/passwd")
    assert status == 404, body
