"""How fast the match studio opens a match run: the folder read (run.json, listings,
edges, groups, the review queue), then each page's first answer from a real server on
127.0.0.1, then (with Chromium and playwright installed) the groups page and the queue
rendered in headless Chromium.

    search match CATALOGUE --matcher M --out RUN
    python benchmarks/studio_load.py RUN

Measured, not asserted (docs/studio.md, "Opening a large run").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the package before tests/: its tests/search folder would shadow the package otherwise
sys.path[:0] = [str(ROOT)]
sys.path += [str(ROOT / "tests"), str(ROOT / "benchmarks")]

from bench_report import load_average, machine_info  # noqa: E402
from helpers.viewer import running  # noqa: E402

from retrieval.atomic import write_text  # noqa: E402
from search.web.server import serve_run  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
ROUTES = ["/api/studio", "/api/histogram", "/api/groups?page=0", "/api/groups?page=100"]
ROUTES += ["/api/group?id=0", "/api/queue?n=10", "/api/labels", "/api/groups?q=samsung"]


def timed_get(url: str) -> tuple[float, int]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as res:
        size = len(res.read())
    return time.perf_counter() - start, size


def browser_times(base: str) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    out = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page()
        for name, path, selector in [
            ("groups page", "/", "#glist .group"),
            ("queue page", "/#queue", "#qpair"),
        ]:
            start = time.perf_counter()
            page.goto(base + path)
            page.wait_for_selector(selector, timeout=120_000)
            out[name] = time.perf_counter() - start
        browser.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="A match run folder (search match --out)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/studio_load.json")
    args = parser.parse_args()
    meta = json.loads((args.run / "run.json").read_text())
    edges = sum(1 for _ in (args.run / "edges.jsonl").open())
    report = {"run": str(args.run), "listings": meta["listings"], "edges": edges}
    report |= {"machine": machine_info(), "load_1m": load_average(), "get_ms": {}}
    print(f"run {args.run}: {meta['listings']} listings, {edges} edges, rule {meta['primary']}")
    start = time.perf_counter()
    server = serve_run(args.run, port=0)
    report["open_s"] = time.perf_counter() - start
    print(f"folder read (listings, edges, groups, queue): {report['open_s']:.2f} s")
    with running(server) as (host, port):
        base = f"http://{host}:{port}"
        for route in ROUTES:
            seconds, size = timed_get(base + route)
            report["get_ms"][route] = round(seconds * 1000, 1)
            print(f"GET {route:<26} {seconds * 1000:8.1f} ms  {size / 1024:8.1f} KiB")
        if CHROMIUM.exists():
            report["chromium_s"] = browser_times(base)
            for name, seconds in report["chromium_s"].items():
                print(f"Chromium, {name} rendered: {seconds:.2f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(f"load average {report['load_1m']}; written {args.out}")


if __name__ == "__main__":
    main()
