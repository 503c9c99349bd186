"""``search eval``: the run folder, its numbers against ranx and by hand, and bad input."""

from __future__ import annotations

import csv
import json
import random

import pytest
from typer.testing import CliRunner

from retrieval.data import open_dataset
from retrieval.errors import UsageError
from retrieval.metrics import match_scores, shopee_f1
from search.cli import app
from search.config import load_config
from search.evaluation.evaluate import evaluate_dataset
from search.evaluation.thresholds import MatchLists, match_sets

ranx = pytest.importorskip("ranx")
OUTPUTS = (
    "stage1.run",
    "stage2.run",
    "qrels.txt",
    "metrics.json",
    "settings.json",
    "report.md",
    "recall_at_k.png",
    "f1_threshold.png",
)


def _cfg(tmp_path, **stage1):
    return load_config(
        None, store={"data_dir": tmp_path / "home"}, stage1={"encoders": ["sparse"], **stage1}
    )


@pytest.fixture
def tiny_eval(tiny_set, tmp_path):
    cfg = _cfg(tmp_path, k=5)
    return evaluate_dataset(cfg, str(tiny_set), out=tmp_path / "run")


def test_run_folder_holds_every_output(tiny_eval):
    for name in OUTPUTS:
        assert (tiny_eval.out / name).stat().st_size > 0, name
    assert not (tiny_eval.out / "submission.csv").exists()  # not a Shopee set
    report = (tiny_eval.out / "report.md").read_text()
    assert "## Ranking, stage by stage" in report
    # no reranker: stage 1 alone, no stage-2 column copied from it, no ceiling to quote
    assert "| metric | stage 1 |\n" in report and "ceiling" not in report
    assert "| stage 2 |" not in report
    assert "the dataset has no images: any image vector is empty" in tiny_eval.notes


def test_skipped_queries_are_counted_not_scored(tiny_eval):
    m = tiny_eval.metrics
    assert m["queries/total"] == 7
    assert m["skipped/no_match_in_gallery"] == 1  # q6
    assert m["skipped/no_vector"] == 1  # q7, no title
    assert m["queries/evaluated"] == 5
    qrels = (tiny_eval.out / "qrels.txt").read_text().split("\n")
    # q5's match missing from the gallery is dropped, its other match kept
    assert "q5 0 g7 1" in qrels and not any("gone" in line for line in qrels)
    assert not any(line.startswith(("q6 ", "q7 ")) for line in qrels)
    settings = json.loads((tiny_eval.out / "settings.json").read_text())
    assert settings["skipped"] == {"no_match_in_gallery": ["q6"], "no_vector": ["q7"]}


def test_ranx_reads_the_files_and_agrees(tiny_eval):
    m = tiny_eval.metrics
    qrels = ranx.Qrels.from_file(str(tiny_eval.out / "qrels.txt"), kind="trec")
    for stage in ("stage1", "stage2"):
        run = ranx.Run.from_file(str(tiny_eval.out / f"{stage}.run"), kind="trec")
        for name in ("recall@1", "recall@5", "precision@1", "mrr@10", "ndcg@10", "map@5"):
            theirs = float(ranx.evaluate(qrels, run, name, make_comparable=True))
            assert m[f"{stage}/{name}"] == pytest.approx(theirs, abs=1e-9), (stage, name)


def test_run_file_format(tiny_eval):
    lines = (tiny_eval.out / "stage1.run").read_text().splitlines()
    qid, q0, _doc, rank, score, tag = lines[0].split()
    assert (q0, rank, tag) == ("Q0", "1", "stage1")
    float(score)
    ranks = [int(line.split()[3]) for line in lines if line.startswith(qid + " ")]
    assert ranks == list(range(1, len(ranks) + 1))


def test_reuses_the_collection(tiny_set, tmp_path, tiny_eval):
    again = evaluate_dataset(_cfg(tmp_path, k=5), str(tiny_set), out=tmp_path / "again")
    assert again.settings["collection"] == tiny_eval.settings["collection"]
    assert not any("indexed by this run" in n for n in again.notes)
    assert again.metrics["stage1/recall@5"] == tiny_eval.metrics["stage1/recall@5"]


def test_one_open_index_per_eval(tiny_set, tmp_path, tiny_eval, monkeypatch):
    import search.collection

    real, opened = search.collection.connect, []
    monkeypatch.setattr(search.collection, "connect", lambda cfg: opened.append(1) or real(cfg))
    again = evaluate_dataset(_cfg(tmp_path, k=5), str(tiny_set), out=tmp_path / "again")
    assert len(opened) == 1
    assert again.metrics["stage1/recall@5"] == tiny_eval.metrics["stage1/recall@5"]


def test_match_sets_threshold_and_keep_nearest():
    rows = {"q": [("1", 0.9), ("2", 0.4), ("3", 0.2)], "empty": []}
    assert match_sets(rows, 0.5, False) == {"q": ["1"], "empty": []}
    assert match_sets(rows, 0.95, True) == {"q": ["1"], "empty": []}  # the nearest kept
    assert match_sets(rows, 0.95, False) == {"q": [], "empty": []}
    assert match_sets(rows, 0.3, False)["q"] == ["1", "2"]


def test_threshold_sweep_agrees_with_match_sets():
    rng = random.Random(3)
    rows, targets = {}, {}
    for q in range(40):
        docs = [f"d{i}" for i in rng.sample(range(20), rng.randint(0, 8))]
        scores = sorted((round(rng.random(), 2) for _ in docs), reverse=True)
        rows[f"q{q}"] = list(zip(docs, scores))
        targets[f"q{q}"] = set(rng.sample([f"d{i}" for i in range(20)], rng.randint(1, 3)))
    for include_self in (False, True):
        lists = MatchLists.build(rows, targets, include_self=include_self)
        for t in (0.0, 0.3, 0.5, 0.9, 2.0):
            for keep in (False, True):
                sets = match_sets(rows, t, keep)
                want = match_scores(sets, targets, include_self=include_self)
                got = lists.scores_at(t, keep)
                assert (got.precision, got.recall, got.f1) == pytest.approx(
                    (want.precision, want.recall, want.f1)
                )


def test_shopee_eval_writes_a_submission_scored_like_the_competition(tmp_path):
    from retrieval.data.synth import synthesize

    path = synthesize(tmp_path / "synth", groups=40, seed=1, image_size=32)
    cfg = _cfg(tmp_path, k=10)
    res = evaluate_dataset(cfg, str(path), out=tmp_path / "run")
    rows = list(csv.DictReader((res.out / "submission.csv").open()))
    dataset = open_dataset(path)
    queries = dataset.queries("test")
    assert [r["posting_id"] for r in rows] == [q.id for q in queries]
    assert all(r["matches"].split()[0] == r["posting_id"] for r in rows)  # self first
    predicted = {r["posting_id"]: r["matches"].split() for r in rows}
    targets = {q.id: list(q.matches) for q in queries}
    m = res.metrics
    # a catalogue's submission is the tuned matcher's rule (stage 1 without a pair model)
    rule = json.loads((res.out / "matcher.json").read_text())["rule"]
    assert shopee_f1(predicted, targets) == pytest.approx(m[f"match/{rule}/f1"])
    assert m["stage1/f1"] == pytest.approx(m[f"match/{rule}/f1"])
    assert 0.0 < m["stage1/recall@10"] <= 1.0


runner = CliRunner()


def test_cli_eval_prints_the_stage_table(tiny_set, tmp_path):
    res = runner.invoke(
        app,
        ["eval", str(tiny_set), "-e", "sparse", "--k", "5", "--out", str(tmp_path / "cli")]
        + ["--data-dir", str(tmp_path / "home")],
    )
    assert res.exit_code == 0, res.output
    assert "recall@5" in res.output and "report:" in res.output
    assert (tmp_path / "cli" / "metrics.json").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--split", "train"], "split 'train' of tiny has no queries; splits with queries: valid"),
        (["--vector", "text"], "unknown vector 'text'"),
        (["--reranker", "nope"], "unknown reranker 'nope'"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(tiny_set, tmp_path, args, message):
    cmd = ["eval", str(tiny_set), "-e", "sparse", "--data-dir", str(tmp_path / "home")]
    res = runner.invoke(app, cmd + args)
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split())


def test_unknown_config_key_names_the_nearest(tiny_set, tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text("[eval]\nsplt = 'test'\n")
    res = runner.invoke(app, ["eval", str(tiny_set), "--config", str(toml)])
    assert res.exit_code == 2
    assert "unknown config key eval.splt; did you mean 'split'?" in " ".join(res.output.split())


def test_every_query_lacking_the_vector_is_an_error(tmp_path, make_set):
    root = make_set(tmp_path / "untitled", [("q", "", ["g1"], "test")])
    with pytest.raises(UsageError, match="none of the 1 'test' queries has a 'sparse' vector"):
        evaluate_dataset(_cfg(tmp_path), str(root), out=tmp_path / "run")
