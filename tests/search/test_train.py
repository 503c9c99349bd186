"""`search train reranker --kind pair-gbdt` end to end on a synthetic Shopee-layout set:
index with lexical vectors (no torch), stage 1 on the train split, fit, and stage 2
beating stage 1 on the valid split. 150 groups give a valid split of ~70 queries."""

from __future__ import annotations

import json
from unittest.mock import ANY

import pytest
from typer.testing import CliRunner

from rerank.base import build_reranker
from retrieval.data import open_dataset
from retrieval.errors import UsageError
from retrieval.retriever import Retriever
from search.cli import app
from search.config import Stage1Config, Stage2Config, load_config
from search.indexing import connect
from search.pipeline import Pipeline

pytest.importorskip("lightgbm")
from search.train.pair_gbdt import PairGbdtOptions, train_pair_gbdt  # noqa: E402
from search.train.registry import TrainJob  # noqa: E402
from training.ranking import STAGE1_WEIGHTS  # noqa: E402

runner = CliRunner()


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from retrieval.data.synth import synthesize

    return synthesize(tmp_path_factory.mktemp("synth"), groups=150, seed=1, image_size=32)


@pytest.fixture(scope="module")
def trained(synth, tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    cfg = load_config(None, store={"data_dir": home}, stage1={"encoders": ["sparse"]})
    report = train_pair_gbdt(cfg, TrainJob(str(synth), home / "model.txt"), PairGbdtOptions(k=20))
    return cfg, report


def test_stage2_beats_stage1_on_valid(trained):
    _, report = trained
    m = report.metrics
    assert report.train_size > 200 and report.valid_size > 40
    assert m["stage2/recall@1"] > m["stage1/recall@1"]
    assert m["stage2/mrr@10"] > m["stage1/mrr@10"]
    assert report.info["vector"] == "sparse" and report.info["k"] == 20


def test_pipeline_uses_the_saved_model(trained, synth):
    cfg, report = trained
    reranker = build_reranker(f"pair-gbdt:{report.out}")
    dataset = open_dataset(str(synth))
    queries = dataset.queries("valid")[:5]
    index = connect(cfg)
    try:
        retriever = Retriever.for_collection(index, report.collection)
        pipe = Pipeline(retriever, reranker, Stage1Config(k=10, vector="sparse"), Stage2Config(n=3))
        results = pipe.run(
            [q.product for q in queries],
            filters=[dataset.search_filter("valid")] * len(queries),
            exclude_self=True,
        ).results
    finally:
        index.close()
    for res in results:
        assert len(res.stage2) == 3 and "sim_sparse" in res.stage2[0].features
        assert res.stage2[0].score >= res.stage2[-1].score
        assert res.query.id not in [c.id for c in res.stage2]


def test_cli_trains_and_reports(synth, tmp_path):
    out = tmp_path / "m.txt"
    args = ["train", "reranker", str(synth), "--out", str(out), "--encoder", "sparse"]
    res = runner.invoke(app, [*args, "--k", "10", "--data-dir", str(tmp_path / "h")])
    assert res.exit_code == 0, res.output
    assert "recall@1" in res.output and out.exists() and (tmp_path / "m.txt.json").exists()


def test_cli_cross_encoder_needs_a_model(synth, tmp_path):
    args = ["train", "reranker", str(synth), "--kind", "cross-encoder", "--out", str(tmp_path)]
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "needs --model" in res.output


def test_cross_encoder_mines_its_own_then_stacks_into_pair_gbdt(synth, tmp_path):
    """Without --negatives the cross-encoder trainer mines the train split itself (the
    defaults of `search mine`); `--with cross-encoder:CE` stacks its scores into
    pair-gbdt; the stacked model refuses to run without, or with another, reranker."""
    from helpers.tiny_bert import build_tiny_bert

    bert = build_tiny_bert(tmp_path / "bert")
    home = ["--data-dir", str(tmp_path / "h"), "--encoder", "sparse", "--k", "10"]
    ce = tmp_path / "ce"
    res = runner.invoke(
        app,
        ["train", "reranker", str(synth), "--kind", "cross-encoder", "--model", str(bert)]
        + ["--out", str(ce), "--max-steps", "2", "--max-length", "32", "--fields", "source"]
        + home,
    )
    assert res.exit_code == 0, res.output
    assert "fresh-head recipe" in res.output and (ce / "valid_epochs.md").is_file()
    # how it read products is recorded, and the reranker reads them alike
    sidecar = json.loads((ce / "search_reranker.json").read_text())
    assert sidecar == {"text": "codes", "fields": ["source"], "stage1_weight": ANY}
    # ... with the weight of stage 1's rank chosen on valid, stage 1's own row first
    assert sidecar["stage1_weight"] in STAGE1_WEIGHTS
    table = (ce / "valid_epochs.md").read_text()
    assert "| stage 1 |" in table and "| stage-1 weight |" in table
    assert build_reranker(f"cross-encoder:{ce}").stage1_weight == sidecar["stage1_weight"]
    fixed = tmp_path / "ce-fixed"  # a weight given is kept, not chosen
    res = runner.invoke(
        app,
        ["train", "reranker", str(synth), "--kind", "cross-encoder", "--model", str(bert)]
        + ["--out", str(fixed), "--max-steps", "1", "--max-length", "32"]
        + ["--stage1-weight", "0.5", *home],
    )
    assert res.exit_code == 0, res.output
    assert json.loads((fixed / "search_reranker.json").read_text())["stage1_weight"] == 0.5
    assert "| stage-1 weight |" not in (fixed / "valid_epochs.md").read_text()
    product = next(open_dataset(str(synth)).products())
    assert (
        build_reranker(f"cross-encoder:{ce}")
        .format(product)
        .endswith(f" | source: {product.fields['source']}")
    )
    # --fields rebuilds the texts from the rows' ids: rows without them are one line
    mined = tmp_path / "mined.jsonl"
    mined.write_text(json.dumps({"query": "a", "pos": ["b"], "neg": ["c"]}) + "\n")
    res = runner.invoke(
        app,
        ["train", "reranker", str(synth), "--kind", "cross-encoder", "--model", str(bert)]
        + ["--out", str(tmp_path / "ce2"), "--negatives", str(mined), "--fields", "source"]
        + home,
    )
    assert res.exit_code != 0 and "--fields reads each product's fields by id" in res.output
    assert len(res.output.strip().splitlines()) == 1
    res = runner.invoke(  # a misspelt field would train on titles alone: refused
        app,
        ["train", "reranker", str(synth), "--kind", "cross-encoder", "--model", str(bert)]
        + ["--out", str(tmp_path / "ce3"), "--fields", "sorce"]
        + home,
    )
    assert res.exit_code != 0 and "no product of the dataset has 'sorce'" in res.output
    assert len(res.output.strip().splitlines()) == 1
    stack = tmp_path / "stack.txt"
    res = runner.invoke(
        app,
        ["train", "reranker", str(synth), "--out", str(stack)]
        + ["--with", f"cross-encoder:{ce}", *home],
    )
    assert res.exit_code == 0, res.output
    meta = json.loads((tmp_path / "stack.txt.json").read_text())
    assert meta["stacked"][0]["kind"] == "cross-encoder" and len(meta["blend"]["coef"]) == 3
    assert meta["valid_metrics"].startswith("blend out-of-fold")  # not the blend's own rows
    with pytest.raises(UsageError, match="trained with with=cross-encoder"):
        build_reranker(f"pair-gbdt:{stack}")
    reranker = build_reranker(f"pair-gbdt:{stack},with=cross-encoder:{ce}")
    assert reranker.stacked[0].column == "stack1_cross_encoder"
    res = runner.invoke(
        app,
        ["train", "reranker", str(synth), "--out", str(tmp_path / "x.txt")]
        + ["--with", f"cross-encoder:{tmp_path / 'missing'}", *home],
    )
    assert res.exit_code != 0 and "not found" in res.output
    assert len(res.output.strip().splitlines()) == 1  # one line, no traceback
    res = runner.invoke(  # no valid queries: the blend has no rows it could be fitted on
        app,
        ["train", "reranker", str(synth), "--out", str(tmp_path / "y.txt")]
        + ["--with", f"cross-encoder:{ce}", "--valid-split", "none", *home],
    )
    assert res.exit_code != 0 and "no labelled queries" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "y.txt").exists()
