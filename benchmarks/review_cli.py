"""The cold start as a user runs it, through the CLI: ``search review`` on one split's
listings written out as a catalogue of their own (indexed into a collection of their
own), a simulated reviewer (the true groups) appending the verdicts of the pairs
``--no-serve`` prints, ``batch`` at a time, each round reopening the folder (which refits
on every label), then ``search match --matcher DIR/matcher.json``, alone and with
``--labels DIR/labels.jsonl``. ``search match`` reports the Shopee F1 against the groups
the review never read. ``review_bench.py`` measures the same workflow in-process, over the
candidate pairs ``search eval`` scores; this checks that the commands give the same.

    nice -n 5 python benchmarks/review_cli.py --work /tmp/review-cli --labels 300
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from benchmarks.bench_report import shared_data  # noqa: E402
from retrieval.atomic import write_text  # noqa: E402
from retrieval.data import open_dataset  # noqa: E402
from search.match.labels import Label, append_label  # noqa: E402

WDC = shared_data("wdc-products") / "catalog.jsonl"


def search(env: dict[str, str], *args: str) -> str:
    """One ``search`` command's standard output; its error and exit on failure."""
    cmd = [sys.executable, "-m", "search", *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(args[:2])} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def split_catalogue(data: Path, split: str, out: Path) -> dict[str, str | None]:
    """The split's listings as a catalogue file (the rows as they are); their groups."""
    ids = {q.product.id for q in open_dataset(str(data)).queries(split)}
    with open(data, encoding="utf-8") as f:
        rows = [r for r in map(json.loads, f) if str(r["id"]) in ids]
    write_text(out, "".join(json.dumps(r) + "\n" for r in rows))
    return {str(r["id"]): (None if r.get("group") is None else str(r["group"])) for r in rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("runs/review-cli"))
    ap.add_argument("--data", type=Path, default=WDC)
    ap.add_argument("--split", default="test")
    ap.add_argument("--labels", type=int, default=300)
    ap.add_argument("--batch", type=int, default=20)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, SEARCH_HOME=str(args.work / "home"))
    catalogue, review = args.work / f"{args.split}.jsonl", args.work / "review"
    group = split_catalogue(args.data, args.split, catalogue)
    common = [str(catalogue), "-c", f"review-{args.split}"]
    start = time.perf_counter()
    labelled = 0
    while labelled < args.labels:
        out = search(env, "review", *common, "--out", str(review), "--no-serve",
                     "--batch", str(args.batch), "--show", str(args.batch))  # fmt: skip
        pairs = [line.split("\t")[:2] for line in out.splitlines() if "\t" in line]
        if not pairs:
            break
        for a, b in pairs[: args.labels - labelled]:
            same = group[a] is not None and group[a] == group[b]
            append_label(review / "labels.jsonl",
                         Label.now(a, b, "match" if same else "no_match", "review_cli"))  # fmt: skip
            labelled += 1
        print(f"{labelled} labels", flush=True)
    print(search(env, "review", *common, "--out", str(review), "--no-serve", "--show", "0"))
    matcher = str(review / "matcher.json")
    for name, extra in (
        ("alone", []),
        ("with --labels", ["--labels", str(review / "labels.jsonl")]),
    ):
        out = search(env, "match", *common, "--matcher", matcher,
                     "--out", str(args.work / f"match-{name.split()[-1]}"), *extra)  # fmt: skip
        f1 = [line for line in out.splitlines() if "Shopee F1" in line]
        print(f"search match {name}: {f1[-1] if f1 else out}", flush=True)
    print(f"{labelled} labels, {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
