"""The match studio driven as a reviewer drives it, in headless Chromium over a real
``search serve --run`` server on a real match run (synthetic catalogue indexed with
``text`` and ``sparse``, a pair-model matcher tuned by ``search eval``, ``search match
--out``): the queue walked with the keyboard, five labels saved and found again after a
reload, the groups page, the explain view's waterfall, two tabs labelling at once.

``STUDIO_SCREENSHOTS=docs/img`` writes the docs' screenshots from the same pages.
"""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers.viewer import running
from typer.testing import CliRunner

from search.cli import app
from search.match.labels import read_labels
from search.web.server import serve_run

KEYS = ["m", "n", "s", "m", "n"]


class AttackerPage(BaseHTTPRequestHandler):
    """A page of another origin (``localhost`` on another port)."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = b"<!doctype html><p>another site</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


VERDICTS = {"m": "match", "n": "no_match", "s": "skip"}


@pytest.fixture(scope="module")
def match_run(tmp_path_factory):
    """A real match run folder of a 30-product synthetic catalogue."""
    pytest.importorskip("sentence_transformers")
    root = tmp_path_factory.mktemp("studio")
    mp = pytest.MonkeyPatch()
    mp.setenv("SEARCH_HOME", str(root / "home"))
    runner = CliRunner()
    data = root / "synth"
    steps = [
        ["data", "synth", str(data), "--groups", "30", "--seed", "3", "--image-size", "32"],
        ["index", str(data), "-e", "text", "-e", "sparse"],
        ["eval", str(data), "--collection", "synth", "--match-against", "catalogue"]
        + ["--match-pair", "--out", str(root / "ev")],
        ["match", str(data), "--collection", "synth", "--matcher", str(root / "ev/matcher.json")]
        + ["--out", str(root / "run")],
    ]
    for args in steps:
        res = runner.invoke(app, args)
        assert res.exit_code == 0, (args, res.output)
    yield root / "run"
    mp.undo()


@pytest.fixture
def studio(match_run):
    """A fresh studio server on the run, its labels file emptied first."""
    (match_run / "labels.jsonl").unlink(missing_ok=True)
    server = serve_run(match_run, port=0)
    with running(server) as (host, port):
        yield f"http://{host}:{port}"


def shoot(page, name: str) -> None:
    folder = os.environ.get("STUDIO_SCREENSHOTS")
    if folder:
        page.wait_for_function(
            "() => [...document.querySelectorAll('section:not(.hidden) img[src]')]"
            ".filter((i) => i.getBoundingClientRect().top < innerHeight).every((i) => i.complete)"
        )
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"studio-{name}.png"), full_page=False)


def current_pair(page) -> tuple[str, str]:
    page.wait_for_selector("#qpair")
    el = page.locator("#qpair")
    return el.get_attribute("data-a"), el.get_attribute("data-b")


def label_with_keys(page, keys: list[str]) -> list[tuple[str, str, str]]:
    done = []
    for key in keys:
        pair = current_pair(page)
        page.keyboard.press(key)
        page.wait_for_function(
            "([a, b]) => { const q = document.querySelector('#qpair');"
            " return !q || q.dataset.a !== a || q.dataset.b !== b; }",
            arg=list(pair),
        )
        done.append((*sorted(pair), VERDICTS[key]))
    return done


def test_queue_by_keyboard_labels_five_pairs_and_a_reload_keeps_them(page, studio, match_run):
    page.goto(studio + "/#queue")
    shoot(page, "queue")
    done = label_with_keys(page, KEYS)
    saved = read_labels(match_run / "labels.jsonl")
    assert {(a, b, lab.verdict) for (a, b), lab in saved.items()} == set(done)
    assert all(lab.source == "studio" and not lab.revises for lab in saved.values())
    page.reload()
    page.wait_for_selector("#labeltable tr.label")
    rows = page.locator("#labeltable tr.label").all_inner_texts()
    assert len(rows) == 5
    for a, b, verdict in done:
        assert any(a in r and b in r and verdict in r for r in rows), (a, b, rows)
    assert "5 labelled" in page.inner_text("#qprogress")
    assert tuple(sorted(current_pair(page))) not in {(a, b) for a, b, _ in done}


def test_groups_page_shows_groups_edges_and_the_truth(page, studio, match_run):
    listings = [json.loads(line) for line in (match_run / "listings.jsonl").open()]
    page.goto(studio + "/")
    page.wait_for_selector("#glist .group")
    assert page.locator("#hist svg rect.bin").count() == 40
    assert page.locator("#hist #thr").count() == 1  # the applied threshold
    first = page.locator("#glist .group").first
    assert first.locator(".card").count() >= 2  # biggest group first
    first.click()
    page.wait_for_selector("#group-open")
    assert page.locator("#inside tr").count() > 1  # header plus its matched edges
    assert "true group" in page.inner_text("#group-open")  # a labelled run
    page.wait_for_function(
        "() => [...document.querySelectorAll('#group-open .card img')]"
        ".every((i) => i.complete && i.naturalWidth > 0)"
    )
    shoot(page, "groups")
    # search by id finds the one group holding the listing; by title words, several
    target = listings[7]
    page.fill("#gq", target["id"])
    page.click("#gform button")
    page.wait_for_selector(f'#glist[data-asked="page=0&q={target["id"]}&errors="]')
    assert page.locator("#glist .group").count() == 1
    assert page.locator(f'#glist .card[data-id="{target["id"]}"]').count() == 1
    word = next(w for w in reversed(target["title"].lower().split()) if w.isalnum())
    page.fill("#gq", word)
    page.click("#gform button")
    page.wait_for_selector(f'#glist[data-asked="page=0&q={word}&errors="]')
    for text in page.locator("#glist .group").all_inner_texts():
        assert word in text.lower()
    # errors-only filter: every shown group has a false merge or split flag
    page.fill("#gq", "")
    page.check("#gerrors")
    page.wait_for_selector('#glist[data-asked="page=0&q=&errors=1"]')
    shown = page.locator("#glist .group").all_inner_texts()
    assert shown and all("merged in" in t or "split off" in t for t in shown)


def test_explain_view_waterfall_adds_up_to_the_logit(page, studio, match_run):
    edges = [json.loads(line) for line in (match_run / "edges.jsonl").open()]
    edge = max((e for e in edges if e.get("contrib")), key=lambda e: e["score"])
    page.goto(studio + f"/#pair={edge['a']}|{edge['b']}")
    page.wait_for_selector("#waterfall")
    steps = page.locator("#waterfall g.step")
    values = [float(v) for v in steps.evaluate_all("(gs) => gs.map((g) => g.dataset.value)")]
    assert len(values) >= 3
    assert abs(sum(values) - edge["contrib"]["logit"]) < 1e-6
    total = float(page.locator("#waterfall g.total").get_attribute("data-value"))
    assert abs(total - edge["contrib"]["logit"]) < 1e-6
    assert "matched" in page.inner_text("#pair")
    shoot(page, "explain")


def test_two_tabs_do_not_lose_each_others_labels(browser, studio, match_run):
    context = browser.new_context()
    try:
        tabs = [context.new_page(), context.new_page()]
        for tab in tabs:
            tab.set_default_timeout(60_000)
            tab.goto(studio + "/#queue")
        done = []
        for _ in range(3):  # alternate: each tab's queue was fetched before the other labelled
            for tab, key in zip(tabs, ("m", "n")):
                done += label_with_keys(tab, [key])
    finally:
        context.close()
    lines = (match_run / "labels.jsonl").read_text().splitlines()
    assert len(lines) == len(done) == 6
    made = {
        (min(r["a"], r["b"]), max(r["a"], r["b"]), r["verdict"]) for r in map(json.loads, lines)
    }
    assert made == set(done)
    read_labels(match_run / "labels.jsonl")  # no contradiction: a changed verdict revises


def test_a_label_posted_by_a_page_of_another_origin_is_refused(page, studio, match_run):
    """A page of another site posts a label the only way a browser lets it (a no-cors
    simple request, which needs no preflight): the server sees its Origin and answers
    403; nothing reaches the run folder. The same label from the studio itself is saved."""
    elsewhere = ThreadingHTTPServer(("127.0.0.1", 0), AttackerPage)
    threading.Thread(target=elsewhere.serve_forever, daemon=True).start()
    origin = f"http://localhost:{elsewhere.server_address[1]}"
    try:
        page.goto(origin + "/")
        edge = json.loads((match_run / "edges.jsonl").open().readline())
        body = json.dumps({"a": edge["a"], "b": edge["b"], "verdict": "match"})
        with page.expect_response(f"{studio}/api/labels") as answer:
            page.evaluate(
                """([url, body]) => fetch(url, {method: "POST", mode: "no-cors", body,
                    headers: {"Content-Type": "text/plain"}}).catch(() => null)""",
                [f"{studio}/api/labels", body],
            )
    finally:
        elsewhere.shutdown()
        elsewhere.server_close()
    assert answer.value.status == 403  # the host/origin guard; nothing else answers 403
    assert not (match_run / "labels.jsonl").exists()
    page.goto(studio + "/#queue")
    label_with_keys(page, ["m"])
    assert len((match_run / "labels.jsonl").read_text().splitlines()) == 1


@pytest.fixture(scope="module")
def review_folder(match_run):
    """A cold-start review folder (``search review --no-serve``) of the same catalogue,
    refitting its pair model after every 5 labels."""
    root = match_run.parent
    out = root / "review"
    args = ["review", str(root / "synth"), "--collection", "synth", "--out", str(out)]
    res = CliRunner().invoke(app, args + ["--batch", "5", "--no-serve", "--show", "0"])
    assert res.exit_code == 0, res.output
    return out


def test_a_cold_start_review_folder_opens_and_learns_from_the_queue(page, review_folder):
    with running(serve_run(review_folder, port=0)) as (host, port):
        page.goto(f"http://{host}:{port}/#queue")
        done = label_with_keys(page, ["m", "n", "n", "m", "n"])
        assert "review" in page.inner_text("#summary")
        page.reload()
        page.wait_for_selector("#labeltable tr.label")
        assert page.locator("#labeltable tr.label").count() == 5
        assert "5 labelled" in page.inner_text("#qprogress")
        page.goto(f"http://{host}:{port}/#groups")
        page.wait_for_selector("#glist .group")
    saved = read_labels(review_folder / "labels.jsonl")
    assert {(a, b, lab.verdict) for (a, b), lab in saved.items()} == set(done)
