"""One search per listing in ``search eval`` on a catalogue: the matcher's edge sets read
the answers stage 1 got for each searched vector (``split_sets(answers=...)``), and are the
edge sets a search of their own gives, edge for edge and score for score."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.data import open_dataset
from search.config import load_config
from search.evaluation import evaluate as evaluate_module
from search.evaluation.evaluate import evaluate_dataset
from search.evaluation.stored import StoredQueries
from search.indexing import connect, index_dataset
from search.match.edgeset import weights_for
from search.match.matcher import Matcher
from search.match.tuning.splits import split_sets
from search.pipeline import Pipeline

TWO = ["sparse", "sparse:word,name=words"]  # a hybrid of two vectors, both lexical


@pytest.fixture
def two_cfg(tmp_path):
    return load_config(None, store={"data_dir": tmp_path / "home"}, stage1={"encoders": TWO})


@pytest.fixture
def indexed_two(catalogue, two_cfg):
    index_dataset(two_cfg, str(catalogue), collection="two")
    return catalogue


class CountingIndex:
    """The real index, counting the search requests sent to it."""

    def __init__(self, index):
        self.index, self.requests = index, 0

    def __getattr__(self, name):
        return getattr(self.index, name)

    def search(self, collection, requests):
        self.requests += len(requests)
        return self.index.search(collection, requests)


def stage1_answers(index, dataset, cfg, splits):
    """Each split's listings through the pipeline, keeping every vector's answer."""
    pipe = Pipeline(StoredQueries(index, "two", dataset.name), None, cfg.stage1, cfg.stage2)
    answers = {}
    for split in splits:
        queries = [q.product for q in dataset.queries(split)]
        run = pipe.run_split(dataset, split, queries, lists=True)
        assert all(set(r.lists) == {"sparse", "words"} for r in run.results)
        answers.update((r.query.id, r.lists) for r in run.results)
    return answers


def test_edge_sets_from_stage_1_answers_equal_their_own_search(indexed_two, two_cfg):
    dataset = open_dataset(str(indexed_two))
    names = ["sparse", "words"]
    template = Matcher(TWO, names, weights_for(names), [], "", 3)
    splits = ["test", "valid"]
    index = CountingIndex(connect(two_cfg))
    try:
        answers = stage1_answers(index, dataset, two_cfg, splits)
        searched = split_sets(index, dataset, "two", template, splits, "valid", None)
        before = index.requests
        given = split_sets(index, dataset, "two", template, splits, "valid", None, answers)
        assert index.requests == before  # not one search more
        partial = {pid: a for pid, a in answers.items() if pid != next(iter(answers))}
        fallback = split_sets(index, dataset, "two", template, splits, "valid", None, partial)
        assert index.requests > before  # a split the answers do not cover is searched
    finally:
        index.close()
    for split in splits:
        a, b, c = searched[split].edges, given[split].edges, fallback[split].edges
        assert len(a) > 0
        for other in (b, c):
            np.testing.assert_array_equal(a.src, other.src)
            np.testing.assert_array_equal(a.dst, other.dst)
            assert a.sims.keys() == other.sims.keys()
            for key in a.sims:
                np.testing.assert_array_equal(a.sims[key], other.sims[key])


def test_eval_in_one_pass_gives_the_figures_of_two(indexed_two, two_cfg, tmp_path, monkeypatch):
    one = evaluate_dataset(two_cfg, str(indexed_two), collection="two", out=tmp_path / "one")
    monkeypatch.setattr(evaluate_module, "_one_pass", lambda *_a: False)
    two = evaluate_dataset(two_cfg, str(indexed_two), collection="two", out=tmp_path / "two")
    timing = ("latency", "throughput", "_ms", "_s", "qps")
    figures = {k: v for k, v in one.metrics.items() if not any(t in k for t in timing)}
    assert any(k.startswith("match/") for k in figures)
    assert figures == {k: two.metrics[k] for k in figures}
    assert one.metrics.keys() == two.metrics.keys()
