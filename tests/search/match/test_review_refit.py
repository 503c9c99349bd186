"""The studio refits a cold-start review in the background (``search.web.studio_refit``),
against the real uvicorn server: the label that completes a batch is answered while its
refit is still running (the real LightGBM fit, held at a gate so the order is a matter of
state, not of the clock), a label sent meanwhile is stored at once and counted for the
next refit, the queue is scored by the new fit once it is done, and a server stopped
mid-refit loses no label."""

from __future__ import annotations

import json
import time

import pytest
from helpers.refit_gate import Gate
from helpers.viewer import request, running

from retrieval.data import open_dataset
from retrieval.types import Product
from search.indexing import connect
from search.match.cold_start import ColdStart
from search.match.queue import SPREAD
from search.web.server import serve_run


def get(site, path):
    status, _, body = request(site, "GET", path)
    assert status == 200, body
    return json.loads(body)


def post_label(site, item, verdict):
    status, _, body = request(site, "POST", "/api/labels", {**item, "verdict": verdict})
    assert status == 200, body
    return json.loads(body)["progress"]


def wait_idle(site) -> dict:
    for _ in range(1200):  # a bound on a state, never an assertion on the time
        state = get(site, "/api/refit")
        if not state["running"]:
            return state
        time.sleep(0.1)
    raise AssertionError("the refit never ended")


@pytest.fixture
def folder(indexed, sparse_cfg, tmp_path):
    """A cold-start review folder over the sparse-indexed catalogue, refitting every 5."""
    dataset = open_dataset(str(indexed))
    products = [Product(p.id, p.title, fields=p.fields) for p in dataset.products()]
    index = connect(sparse_cfg)
    try:
        ColdStart.create(index, "shop", dataset.name, products, ["sparse"], ["sparse"],
                         tmp_path / "rev", batch=5)  # fmt: skip
    finally:
        index.close()
    groups = {r["id"]: r.get("group") for r in map(json.loads, indexed.open())}
    oracle = lambda a, b: "match" if groups[a] and groups[a] == groups[b] else "no_match"  # noqa: E731
    return tmp_path / "rev", oracle


def test_a_label_is_answered_before_its_refit_ends_and_the_queue_follows(folder, monkeypatch):
    rev, oracle = folder
    fits = Gate(monkeypatch)
    server = serve_run(rev, port=0)
    with running(server) as site:
        items = [{"a": i["a"], "b": i["b"]} for i in get(site, "/api/queue?n=10")["items"]]
        assert {i["reason"] for i in get(site, "/api/queue?n=10")["items"]} == {SPREAD}
        for item in items[:4]:
            assert post_label(site, item, oracle(**item))["refitting"] is False
        answer = post_label(site, items[4], oracle(**items[4]))  # the fifth: a batch
        assert answer["refitting"] is True  # answered with its refit started, not done
        assert fits.entered.wait(60)  # ...and the fit is still held at the gate
        assert get(site, "/api/refit") == {"running": True, "done": 0, "error": None}
        during = post_label(site, items[5], oracle(**items[5]))  # answered mid-refit
        assert during["labelled"] == 6 and during["refitting"] is True
        assert len((rev / "labels.jsonl").read_text().splitlines()) == 6  # on disk at once
        still = get(site, "/api/queue?n=10")  # the queue answers too, from the last fit
        assert {i["reason"] for i in still["items"]} == {SPREAD}
        assert not (rev / "matcher.json").exists()

        fits.gate.set()
        assert wait_idle(site) == {"running": False, "done": 1, "error": None}
        assert fits.pairs == [5]  # the labels when it started; the sixth waits for the next
        after = get(site, "/api/queue?n=10")
        assert {i["reason"] for i in after["items"]} - {SPREAD}  # asked by the fitted model
        assert after["progress"]["estimated_f1"] is not None
        meta = json.loads((rev / "run.json").read_text())
        assert meta["threshold"] == pytest.approx(after["progress"]["threshold"])
        assert (rev / "matcher.json").is_file()

        fresh = [{"a": i["a"], "b": i["b"]} for i in after["items"]]
        for item in fresh[:4]:  # with the sixth, a batch again: the next refit has all ten
            post_label(site, item, oracle(**item))
        assert wait_idle(site)["done"] == 2 and fits.pairs == [5, 10]


def test_a_server_stopped_mid_refit_loses_no_label(folder, monkeypatch):
    rev, oracle = folder
    fits = Gate(monkeypatch)
    server = serve_run(rev, port=0)
    with running(server) as site:
        items = [{"a": i["a"], "b": i["b"]} for i in get(site, "/api/queue?n=10")["items"]]
        for item in items[:5]:
            post_label(site, item, oracle(**item))
        assert fits.entered.wait(60)
        post_label(site, items[5], oracle(**items[5]))
    # the server is gone with its refit held mid-fit: the folder has every label
    assert len((rev / "labels.jsonl").read_text().splitlines()) == 6
    assert not (rev / "matcher.json").exists()  # no half-written fit either
    fits.gate.set()
    server.studio.refits.join(120)
    reopened = ColdStart.open(rev)  # what `search review` or the studio reopens
    assert len(reopened.labels) == 6 and reopened.boosters and fits.pairs[-1] == 6
