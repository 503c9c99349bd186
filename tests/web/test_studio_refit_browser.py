"""A cold-start review in the studio, driven in headless Chromium over the real server:
the label that completes a batch returns while its refit runs in the background (the
real fit, held at a gate: the order is one of state, not of the clock), the page says a
refit is running, the next pair can be labelled meanwhile, and once the refit is done
the page fetches the queue the new fit orders and hides the notice."""

from __future__ import annotations

import pytest
from helpers.refit_gate import Gate
from helpers.viewer import running
from test_studio_browser import label_with_keys
from typer.testing import CliRunner

from search.cli import app
from search.match.labels import read_labels
from search.match.queue import SPREAD
from search.web.server import serve_run

NOTICE = "#qrefit:not(.hidden)"


@pytest.fixture
def cold_folder(tmp_path, monkeypatch):
    """A synthetic catalogue indexed with ``sparse`` and its cold-start review folder,
    refitting every 5 labels (``search review --no-serve``)."""
    monkeypatch.setenv("SEARCH_HOME", str(tmp_path / "home"))
    data, out = tmp_path / "synth", tmp_path / "review"
    runner = CliRunner()
    steps = [
        ["data", "synth", str(data), "--groups", "30", "--seed", "5", "--image-size", "32"],
        ["index", str(data), "-e", "sparse"],
        ["review", str(data), "--collection", "synth", "--out", str(out), "--batch", "5"]
        + ["--no-serve", "--show", "0"],
    ]
    for args in steps:
        res = runner.invoke(app, args)
        assert res.exit_code == 0, (args, res.output)
    return out


def test_the_refit_runs_behind_the_page_and_the_queue_follows_it(page, cold_folder, monkeypatch):
    fits = Gate(monkeypatch)
    with running(serve_run(cold_folder, port=0)) as (host, port):
        page.goto(f"http://{host}:{port}/#queue")
        page.wait_for_selector("#qpair")
        assert page.get_attribute("#qpair", "data-reason") == SPREAD
        assert not page.is_visible("#qrefit")
        done = label_with_keys(page, ["m", "n", "n", "m", "n"])  # each waits for the next pair
        page.wait_for_selector(NOTICE)  # the fifth answered: its refit runs behind the page
        assert fits.entered.wait(60) and not fits.gate.is_set()  # held mid-fit all along
        done += label_with_keys(page, ["n"])  # labelling goes on during the refit
        assert len(read_labels(cold_folder / "labels.jsonl")) == 6
        assert page.is_visible("#qrefit")

        fits.gate.set()
        page.wait_for_selector("#qrefit", state="hidden")
        page.wait_for_function(  # the queue fetched again, ordered by the fitted model
            "() => { const q = document.querySelector('#qpair');"
            f" return q && q.dataset.reason !== {SPREAD!r}; }}"
        )
        assert "estimated F1" in page.inner_text("#qprogress")
        assert fits.pairs == [5]  # one refit, on the five labels it started with
    saved = read_labels(cold_folder / "labels.jsonl")
    assert {(a, b, lab.verdict) for (a, b), lab in saved.items()} == set(done)
