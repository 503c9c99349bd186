"""``search eval --match-pair --labels``: reviewed pairs in the pair model's training rows
and the threshold tuning, those touching test listings held out, reported as labels/*."""

from __future__ import annotations

import json
import random

from typer.testing import CliRunner

from retrieval.data import open_dataset
from search.cli import app
from search.indexing import connect
from search.match.edgeset import weights_for
from search.match.labels import Label, append_label, read_labels
from search.match.matcher import Matcher
from search.match.pair_model import same_group
from search.match.tuning.catalogue import tune_catalogue
from search.match.tuning.labelled import TuningLabels
from search.match.tuning.pair import targets
from search.match.tuning.splits import catalogue_sets

runner = CliRunner()
AT = "2026-12-06T08:00:00+00:00"


def _write_labels(path, products, seed=0):
    """Reviewed pairs: group mates labelled no_match (the groups corrected) and
    strangers labelled match, in every split, test included."""
    rng = random.Random(seed)
    by_split: dict[str, list] = {}
    for p in products:
        if p.group is not None:
            by_split.setdefault(p.fields["split"], []).append(p)
    for _, rows in sorted(by_split.items()):
        mates = [(a, b) for a in rows for b in rows if a.id < b.id and a.group == b.group]
        strangers = [(a, b) for a in rows for b in rows if a.id < b.id and a.group != b.group]
        for a, b in rng.sample(mates, 3):
            append_label(path, Label(a.id, b.id, "no_match", AT, "bench"))
        for a, b in rng.sample(strangers, 3):
            append_label(path, Label(a.id, b.id, "match", AT, "bench"))
    return read_labels(path, {p.id for p in products})


def test_labels_touching_test_listings_are_held_out_of_fitting_and_tuning(
    indexed, sparse_cfg, tmp_path
):
    dataset = open_dataset(str(indexed))
    products = list(dataset.products())
    labels = _write_labels(tmp_path / "labels.jsonl", products)
    reviewed = TuningLabels.split(labels, products, "test")
    split_of = {p.id: p.fields.get("split") for p in products}
    assert reviewed.held_out and all(
        "test" in (split_of[a], split_of[b]) for a, b in reviewed.held_out
    )
    assert not any("test" in (split_of[a], split_of[b]) for a, b in reviewed.fit)
    index = connect(sparse_cfg)
    try:
        template = Matcher(["sparse"], ["sparse"], weights_for(["sparse"]), [], "", 20)
        sets = catalogue_sets(index, dataset, "shop", template, ["test", "valid", "train"])
    finally:
        index.close()
    train = sets["train"]
    y, mask = targets(train, reviewed)
    ids = [p.id for p in train.products]
    named = {
        tuple(sorted((ids[i], ids[j])))
        for i, j in zip(train.edges.src[mask], train.edges.dst[mask])
    }
    assert named and named <= set(reviewed.fit)  # no held-out pair among the training targets
    groups = same_group(train.edges, train.products)
    assert (y[~mask] == groups[~mask]).all()  # other edges keep their groups' target
    assert (y[mask] != groups[mask]).all()  # every label here corrects the groups
    # the tuning split's targets follow its fit labels; the scored split's do not change
    valid = reviewed.amend(sets["valid"])
    row = {p.id: i for i, p in enumerate(valid.products)}
    want, plain = valid.targets(), sets["valid"].targets()
    for (a, b), v in reviewed.fit.items():
        i, j = row[a], row[b]
        if i in plain:
            assert (j in want[i]) == bool(v)
    checked = sum(row[a] in plain for a, _ in reviewed.fit)
    assert checked and sets["valid"].targets() == plain  # amend() made a copy


def test_tuning_with_labels_reports_them_apart(indexed, sparse_cfg, tmp_path):
    dataset = open_dataset(str(indexed))
    products = list(dataset.products())
    labels = _write_labels(tmp_path / "labels.jsonl", products)
    index = connect(sparse_cfg)
    try:
        cat = tune_catalogue(
            index, dataset, "shop", ["sparse"], ["sparse"], tmp_path / "m",
            pair=True, against="catalogue", labels=labels,
        )  # fmt: skip
    finally:
        index.close()
    m = cat.metrics()
    assert m["labels/n"] == 18 and m["labels/held_out"] == 6 and m["labels/match"] == 9
    assert m["labels/against_groups"] == 12  # every fit label corrects the groups
    assert 0 < m["labels/fitted"] <= 12 and m["labels/tuning"] > 0
    assert m["labels/held_out_decided"] > 0 and 0 <= m["labels/held_out_agreement"] <= 1
    assert 0 <= m["labels/agreement"] <= 1
    assert "match/pair/f1" in m and "stage2/f1" in m  # the split's own figures as before


def test_cli_eval_labels_and_the_config_key(indexed, tmp_path):
    dataset = open_dataset(str(indexed))
    labels_path = tmp_path / "labels.jsonl"
    _write_labels(labels_path, list(dataset.products()))
    home = ["--data-dir", str(tmp_path / "home"), "-c", "shop"]
    out = tmp_path / "run"
    cmd = ["eval", str(indexed), *home, "--match-pair", "--labels", str(labels_path)]
    res = runner.invoke(app, [*cmd, "--out", str(out)])
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["labels/n"] == 18 and "labels/agreement" in metrics
    config = tmp_path / "c.toml"
    config.write_text(f'[eval]\nlabels = "{tmp_path / "missing.jsonl"}"\n')
    res = runner.invoke(app, ["eval", str(indexed), *home, "--config", str(config)])
    assert res.exit_code == 2 and "eval.labels: no labels file" in res.output
    config.write_text("[eval]\nlabels = 3\n")
    res = runner.invoke(app, ["eval", str(indexed), *home, "--config", str(config)])
    assert res.exit_code == 2 and "labels" in res.output
    assert len(res.output.strip().splitlines()) == 1
    append_label(labels_path, Label("p0-0", "ghost", "match", AT, "studio"))
    res = runner.invoke(app, [*cmd, "--out", str(tmp_path / "r2")])
    assert res.exit_code == 1 and "labels.jsonl:19: unknown listing id 'ghost'" in res.output


def test_labels_on_a_query_gallery_set_are_one_line(tmp_path, tiny_set):
    labels = tmp_path / "labels.jsonl"
    append_label(labels, Label("q1", "g1", "match", AT, "studio"))
    home = ["--data-dir", str(tmp_path / "home"), "-e", "sparse"]
    res = runner.invoke(app, ["eval", str(tiny_set), *home, "--labels", str(labels)])
    assert res.exit_code == 2 and "query/gallery set" in res.output
    assert len(res.output.strip().splitlines()) == 1
