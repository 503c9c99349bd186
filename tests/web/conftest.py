"""Browser tests of the viewer: headless Chromium (Debian's package, /usr/bin/chromium)
driven by Playwright over a real viewer on 127.0.0.1. Skipped, with the reason, where
Chromium or the playwright package is missing (``tools/install_browser.sh`` installs
Chromium in ``make test`` when run as root). Playwright never downloads a browser here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.viewer import running
from typer.testing import CliRunner

from retrieval.data.synth import synthesize
from search.cli import app
from search.config import load_config
from search.web.server import serve

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    reason = None
    if not CHROMIUM.exists():
        reason = f"no {CHROMIUM} (apt-get install chromium, or run tools/install_browser.sh)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "the playwright package is missing (pip install -e '.[dev]')"
    if reason:
        for item in items:
            if here in Path(item.fspath).parents:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)  # a shared 2-core machine; a tiny model still loads
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))  # script errors, CSP included
    try:
        yield page
    finally:
        context.close()
    assert not errors, errors


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A synthetic Shopee-format set indexed with ``sparse`` and ``phash``, one
    evaluation run of it, and a tiny random cross-encoder in a models folder."""
    pytest.importorskip("imagehash")
    root = tmp_path_factory.mktemp("web")
    mp = pytest.MonkeyPatch()
    mp.setenv("SEARCH_HOME", str(root / "home"))
    data = synthesize(root / "synth", groups=12, seed=3, image_size=48)
    runner = CliRunner()
    res = runner.invoke(app, ["index", str(data), "-e", "sparse", "-e", "phash"])
    assert res.exit_code == 0, res.output
    out = root / "runs" / "r1"
    res = runner.invoke(app, ["eval", str(data), "--collection", "synth", "--out", str(out)])
    assert res.exit_code == 0, res.output
    config = load_config(None)
    yield root, data, config
    mp.undo()


@pytest.fixture(scope="module")
def tiny_reranker(shop):
    pytest.importorskip("sentence_transformers")
    from helpers.tiny_bert import build_tiny_bert

    root, _, _ = shop
    return build_tiny_bert(root / "models" / "tiny-ce", classifier=True)


@pytest.fixture(scope="module")
def base_url(shop):
    root, _, config = shop
    (root / "models").mkdir(exist_ok=True)
    server = serve(config, root / "runs", port=0, models_dirs=(root / "models",))
    with running(server) as (host, port):
        yield f"http://{host}:{port}"
