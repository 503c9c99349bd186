"""A hand-edited ``matcher.json`` is validated whole (issue 23, cases 9 and 10): wrong
types, out-of-range counts, NaN or infinite numbers, weights of vectors the matcher does
not read, ``inb`` on a rule that reads the pair model, unknown keys, nesting 50,000 deep.
Each is one line naming the file and the key, exit 2, never a traceback, never accepted
silently (NaN weights used to write bare ``NaN`` into ``matches.jsonl``).
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from retrieval.errors import UsageError
from search.cli import app
from search.match.matcher import Matcher, PairModel
from search.match.rules import Rule

runner = CliRunner()


def good() -> dict:
    rules = [
        Rule("s", {"sparse": 0.5}, "sparse", min2=0.2),
        Rule("g", {"mean": 0.5}, "mean", groups="components", group_cap=4, inb=1),
        Rule("p", {"pair": 0.5}, "pair"),
    ]
    pair = PairModel("matcher.pair.txt", ["mean"], seeds=2, files=[])
    return Matcher(
        ["sparse", "phash"],
        ["sparse", "phash"],
        {"sparse": 1.0, "phash": 0.5},
        rules,
        "s",
        pair=pair,
        info={"tuned_listings": 40},
    ).to_json()


def edit(data: dict, path: str, value) -> dict:
    """``data`` with the value at ``a.b.0.c`` replaced (``del`` removes the key)."""
    data = json.loads(json.dumps(data))
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node = data
    for p in parents:
        node = node[p]
    if value == "del":
        del node[last]
    else:
        node[last] = value
    return data


NAN, INF = float("nan"), float("inf")

# (key edited, its new value, what the one line must say besides the file and the key)
CASES = [
    ("weights", ["sparse"], "valid dictionary"),
    ("weights", {}, "at least 1"),
    ("weights.sparse", NAN, "finite"),
    ("weights.sparse", INF, "finite"),
    ("weights.sparse", "1", "valid number"),
    ("weights.sparse", -1.0, "0 or more"),
    ("weights.image", 1.0, "not among vectors"),
    ("k", -3, "greater than or equal to 1"),
    ("k", 0, "greater than or equal to 1"),
    ("k", 10**20, "less than or equal"),
    ("k", "20", "valid integer"),
    ("k", 2.5, "valid integer"),
    ("rules.0.thresholds.sparse", "0.5", "valid number"),
    ("rules.0.thresholds.sparse", NAN, "finite"),
    ("rules.0.thresholds.sparse", -INF, "finite"),
    ("rules.0.min2", NAN, "finite"),
    ("rules.1.group_cap", "4", "valid integer"),
    ("rules.1.group_cap", -1, "greater than or equal to 0"),
    ("rules.1.inb", "1", "valid integer"),
    ("rules.1.inb", 7, "less than or equal to 3"),
    ("rules.1.inb", True, "valid integer"),
    ("rules.1.groups", "cliques", "unknown grouping"),
    ("rules.2.inb", 1, "pair"),
    ("rules.0.primary", "text", "has no threshold"),
    ("rules.0.thresholds", {}, "at least 1"),
    ("rules.0.group_capp", 2, "did you mean 'group_cap'"),
    ("rules.0.colour", "red", "known: name, thresholds"),
    ("rules", [], "at least 1"),
    ("rules", {"s": 1}, "valid list"),
    ("rule", "nope", "not among rules"),
    ("pair.seeds", 0, "greater than or equal to 1"),
    ("pair.seeds", -2, "greater than or equal to 1"),
    ("pair.seeds", "2", "valid integer"),
    ("pair.seeds", 10**9, "less than or equal"),
    ("pair.neighbours", 0, "greater than or equal to 1"),
    ("pair.columns", "mean", "valid list"),
    ("wieghts", 1, "did you mean 'weights'"),
    ("encoders", "sparse", "valid list"),
    ("vectors", "del", "missing"),
    ("info", [1], "valid dictionary"),
    ("info.tuned_listings", "many", "valid integer"),
    ("info.tuned_listings", -4, "greater than or equal to 0"),
    ("info.tuned_against", "whole", "'split' or 'catalogue'"),
    ("info.tuned_listing", 40, "did you mean 'tuned_listings'"),
    ("rules.0.notes", {"tune_f1": float("nan")}, "holds nan"),
]


@pytest.mark.parametrize(("key", "value", "says"), CASES, ids=[f"{k}={v!r}" for k, v, _ in CASES])
def test_each_bad_value_is_one_line_naming_the_key_and_the_file(tmp_path, key, value, says):
    path = tmp_path / "matcher.json"
    path.write_text(json.dumps(edit(good(), key, value)))
    with pytest.raises(UsageError) as err:
        Matcher.load(path)
    line = str(err.value)
    assert "\n" not in line and str(path) in line and says in line, line
    head = key.split(".")[-1]
    assert head in line or key.split(".")[0] in line, line


def test_the_good_file_loads(tmp_path):
    path = tmp_path / "matcher.json"
    path.write_text(json.dumps(good()))
    m = Matcher.load(path)
    assert m.weights == {"sparse": 1.0, "phash": 0.5} and m.pair is not None
    assert [r.name for r in m.rules] == ["s", "g", "p"] and m.rules[1].group_cap == 4


def test_a_switched_off_threshold_is_written_off_and_read_back(tmp_path):
    """The tuner switches a score off with float("inf"): written as "off", never as the
    Infinity token the loader refuses."""
    inf = float("inf")
    rule = Rule("u", {"mean": inf, "sparse": 0.5}, "mean", min2=0.1, inb=1, inb_threshold=inf)
    matcher = Matcher(["sparse"], ["sparse"], {"sparse": 1.0}, [rule], "u")
    path = matcher.save(tmp_path / "matcher.json")
    text = path.read_text()
    assert "Infinity" not in text and json.loads(text)["rules"][0]["thresholds"]["mean"] == "off"
    assert Matcher.load(path) == matcher
    path.write_text(text.replace('"off"', '"of"', 1))
    with pytest.raises(UsageError, match=r"rules\[0\].thresholds.mean should be a valid number"):
        Matcher.load(path)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_nan_tokens_in_the_json_text_are_refused(tmp_path, token):
    path = tmp_path / "matcher.json"
    path.write_text(json.dumps(good()).replace('"sparse": 1.0', f'"sparse": {token}'))
    with pytest.raises(UsageError, match=r"matcher.json: weights.sparse should be a finite number"):
        Matcher.load(path)
    path.write_text(
        json.dumps(good()).replace('"tuned_listings": 40', f'"valid_f1": {{"s": {token}}}')
    )
    with pytest.raises(
        UsageError, match=r"matcher.json: info.valid_f1.s should be a finite number"
    ):
        Matcher.load(path)


def test_nesting_fifty_thousand_deep_is_one_line(tmp_path):
    path = tmp_path / "matcher.json"
    path.write_text('{"format": ' + "[" * 50_000 + "]" * 50_000 + "}")
    with pytest.raises(UsageError, match="nested too deeply"):
        Matcher.load(path)
    data = json.dumps(good())
    path.write_text(data[:-1] + ', "info": ' + "[" * 50_000 + "]" * 50_000 + "}")
    with pytest.raises(UsageError, match="nested too deeply"):
        Matcher.load(path)


def catalogue(tmp_path):
    rows = [
        {"id": f"p{i}", "title": f"red shoe model x{i // 2}", "group": f"g{i // 2}"}
        for i in range(6)
    ]
    path = tmp_path / "shop.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    ("key", "value"),
    [("weights.sparse", NAN), ("k", -1), ("rules.0.group_cap", "4"), ("deep", None)],
)
def test_search_match_refuses_a_bad_matcher_in_one_line(tmp_path, key, value):
    path = catalogue(tmp_path)
    home = ["--data-dir", str(tmp_path / "home"), "-c", "shop"]
    assert runner.invoke(app, ["index", str(path), "-e", "sparse", *home]).exit_code == 0
    data = Matcher(
        ["sparse"], ["sparse"], {"sparse": 1.0}, [Rule("x", {"sparse": 0.5}, "sparse")], "x"
    ).to_json()
    m = tmp_path / "m.json"
    if key == "deep":
        m.write_text(json.dumps(data)[:-1] + ', "info": ' + "[" * 50_000 + "]" * 50_000 + "}")
    else:
        m.write_text(json.dumps(edit(data, key, value)))
    res = runner.invoke(
        app, ["match", str(path), *home, "-m", str(m), "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 2, res.output
    assert (
        "Traceback" not in res.output
        and res.exception is None
        or isinstance(res.exception, SystemExit)
    )
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "m.json" in lines[0], res.output
    assert not (tmp_path / "o").exists()
