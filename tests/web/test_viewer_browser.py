"""The viewer's page driven as a user drives it, in headless Chromium (issue 23, case 0:
the page's own search posted ``text/plain`` and every query was a 415; no test used a
browser, so none saw it). Text, image and reranked queries render both stages; an
evaluation run opens and its wrong-top-1 filter shows exactly the wrong queries."""

from __future__ import annotations

import json
import urllib.request

RESULTS = "#s1 .card, #qerr:not(:empty)"  # results, or the error line that replaces them


def search(page, *, text="", image=None, vector="", reranker=""):
    """Fill the form and press Search; the page's own fetch does the rest."""
    page.wait_for_function("() => document.querySelectorAll('#coll option').length > 0")
    page.fill("#q", text)
    if image is not None:
        page.set_input_files("#img", str(image))
    page.fill("#vector", vector)
    page.fill("#reranker", reranker)
    page.fill("#n", "5")
    page.fill("#k", "20")
    page.click("#qform button")
    page.wait_for_selector(RESULTS)
    assert page.inner_text("#qerr") == "", page.inner_text("#qerr")


def stage_cards(page, stage: str) -> list[str]:
    return page.locator(f"#{stage} .card").all_inner_texts()


def test_text_query_renders_stage_1(page, base_url):
    page.goto(base_url + "/")
    search(page, text="samsung galaxy a52 128gb")
    assert page.locator("#s1 h3").inner_text().startswith("stage 1")
    assert len(stage_cards(page, "s1")) == 5
    assert stage_cards(page, "s2") == []  # no reranker: no second stage
    # the listed images load through /api/image (a broken image has naturalWidth 0)
    page.wait_for_function(
        "() => [...document.querySelectorAll('#s1 .card img')]"
        ".every((i) => i.complete && i.naturalWidth > 0)"
    )


def test_text_query_with_reranker_renders_both_stages(page, base_url, tiny_reranker):
    page.goto(base_url + "/")
    search(page, text="samsung galaxy a52 128gb", reranker=f"cross-encoder:{tiny_reranker}")
    page.wait_for_selector("#s2 .card")
    assert page.locator("#s2 h3").inner_text().startswith("stage 2 · cross-encoder")
    assert len(stage_cards(page, "s1")) == 5 and len(stage_cards(page, "s2")) == 5
    assert all("stage 1 #" in card for card in stage_cards(page, "s2"))  # rank moves shown


def test_image_query_with_reranker_renders_both_stages(page, base_url, shop, tiny_reranker):
    _, data, _ = shop
    picture = sorted((data / "train_images").iterdir())[0]
    page.goto(base_url + "/")
    search(page, image=picture, vector="phash", reranker=f"cross-encoder:{tiny_reranker}")
    page.wait_for_selector("#s2 .card")
    assert "phash" in page.locator("#s1 h3").inner_text()
    first = page.locator("#s1 .card img").first.get_attribute("src")
    assert picture.name in urllib.request.unquote(first)  # the same picture comes first
    assert len(stage_cards(page, "s2")) == 5


def test_shared_link_runs_the_query(page, base_url):
    page.goto(base_url + "/?q=xiaomi+redmi+note&collection=synth&n=3")
    page.wait_for_selector(RESULTS)
    assert page.inner_text("#qerr") == ""
    assert len(stage_cards(page, "s1")) == 3


def test_eval_run_opens_and_wrong_top1_filter_works(page, base_url):
    with urllib.request.urlopen(base_url + "/api/run?path=r1", timeout=60) as res:
        run = json.loads(res.read())
    wrong = [
        q["id"]
        for q in run["queries"]
        if not (q["stage2_top1_ok"] if q["stage2"] else q["stage1_top1_ok"])
    ]
    page.goto(base_url + "/")
    page.click("#tab-runs")
    page.wait_for_function("() => document.querySelectorAll('#runsel option').length > 1")
    page.select_option("#runsel", "r1")
    page.wait_for_selector("table.metrics")
    assert "recall" in page.inner_text("#rmetrics")
    queries = page.locator("#rqueries .query")
    assert queries.count() == len(run["queries"])
    assert page.locator("#rqueries .card.rel").count() > 0  # relevant items marked
    page.check("#wrong")
    assert page.inner_text("#rqueries p") == f"{len(wrong)} queries shown"
    assert queries.count() == len(wrong)
    shown = [q.split()[0] for q in page.locator("#rqueries .query > .card .meta").all_inner_texts()]
    assert shown == wrong
    page.uncheck("#wrong")
    assert queries.count() == len(run["queries"])
    # the shareable link opens the run with the filter on
    page.goto(base_url + "/?run=r1&wrong=1")
    page.wait_for_selector("#rqueries p")
    assert page.inner_text("#rqueries p") == f"{len(wrong)} queries shown"


def test_a_refused_model_is_one_error_line_on_the_page(page, base_url, tmp_path):
    page.goto(base_url + "/")
    page.wait_for_function("() => document.querySelectorAll('#coll option').length > 0")
    page.fill("#q", "samsung galaxy")
    page.fill("#reranker", f"cross-encoder:{tmp_path}")  # a folder outside --models-dir
    page.click("#qform button")
    page.wait_for_selector("#qerr:not(:empty)")
    assert "outside --models-dir" in page.inner_text("#qerr")
    assert stage_cards(page, "s1") == []
