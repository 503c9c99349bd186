"""Catalogue matching, measured: F1 of every rule and listings matched per second.

For each catalogue (wdc-products by default; add ``--synth N`` for a synthetic Shopee
catalogue of N listings): index it once (text + sparse) unless its collection exists,
tune the matcher on valid exactly as ``search eval --match-pair`` does (F1 of every rule
on valid and test, stage 1 alone and with the pair model), then time the whole
``search match`` job on the entire catalogue with the stage-1 rule and with the pair
rule (``--no-job``: skip it), and score it: the Shopee F1 of every grouped listing
matched against the whole catalogue, and of each split's. ``--against`` tunes with
each split matched within itself (``split``), against the whole catalogue
(``catalogue``, as the job runs), or both, one after the other. ``--text-encoder SPEC``
indexes with another text encoder (a fine-tuned one: ``text:runs/wdc-text-ft``;
repeated, several, each with its own ``name=``) into a collection of its own. Writes
``match_bench.json`` and prints Markdown tables.

    python benchmarks/match_bench.py --home runs/bench-home --synth 34250 --against both
    python benchmarks/match_bench.py --home runs/ft-home --text-encoder text:runs/wdc-text-ft

Measured, not asserted; the machine may be shared: say so with the figures.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import re
import time
from pathlib import Path

from retrieval.atomic import write_json
from retrieval.data import open_dataset
from search.config import load_config
from search.indexing import connect, index_dataset
from search.match.job import run_match
from search.match.tuning.catalogue import tune_catalogue

WDC = Path("../shared/data/wdc-products")  # relative to the repository root
log = logging.getLogger("match_bench")


def synth(root: Path, listings: int) -> Path:
    """A synthetic Shopee catalogue truncated to exactly ``listings`` rows."""
    from retrieval.data.synth import synthesize

    folder = root / f"synth{listings}"
    if not (folder / "train.csv").exists():
        synthesize(folder, groups=listings // 3 + 10, seed=0, image_size=32)
        rows = list(csv.reader((folder / "train.csv").open()))
        with (folder / "train.csv").open("w", newline="") as fh:
            csv.writer(fh).writerows(rows[: listings + 1])
    return folder


def collection_name(base: str, text_encoders: list[str]) -> str:
    """The collection of a catalogue indexed with ``text_encoders``: ``base`` for the
    packaged ``text`` alone, else suffixed with each other encoder's folder name
    (``wdc-wdc-text-ft``), so a fine-tuned encoder never reuses vectors of another."""
    tags = []
    for spec in text_encoders:
        if spec == "text":
            continue
        path = spec.split(":", 1)[-1].split(",", 1)[0].rstrip("/\\")
        tags.append(re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(path).name).strip(".-") or "encoder")
    return "-".join([base, *tags])[:64]


def bench(
    cfg, path: str, collection: str, out: Path, pair: bool, against: str, job: bool = True
) -> dict:
    """Tune on valid, score on test, then time and score the whole-catalogue match job."""
    dataset = open_dataset(path)
    index = connect(cfg)
    if index.info(collection) is None:
        index.close()
        t = time.perf_counter()
        index_dataset(cfg, path, collection=collection)
        log.info("%s indexed in %.0fs", collection, time.perf_counter() - t)
        index = connect(cfg)
    try:
        info = index.info(collection)
        names = [v.name for v in info.vectors]
        t = time.perf_counter()
        cat = tune_catalogue(
            index, dataset, collection, info.meta["encoders"], names, out, pair=pair,
            against=against,
        )  # fmt: skip
        tune_s = time.perf_counter() - t
        runs = {}
        for stage in (("stage1", "stage2") if pair else ("stage1",)) if job else ():
            rule = cat.best(stage).rule
            res = run_match(index, collection, dataset, cat.matcher, rule, out / stage)
            runs[stage] = {
                "rule": rule.name,
                "listings": res.listings,
                "seconds": round(res.seconds, 2),
                "listings_per_s": round(res.rate, 1),
                "whole_catalogue_f1": round(res.scores.f1, 4) if res.scores else None,
                "whole_catalogue_split_f1": {
                    k: round(v.f1, 4) for k, v in res.split_scores.items()
                },
            }
            log.info("%s %s: %s", collection, stage, runs[stage])
    finally:
        index.close()
    return {
        "collection": collection,
        "against": against,
        "tune_seconds": round(tune_s, 1),
        "chosen": {s: cat.best(s).rule.name for s in ("stage1", "stage2") if cat.best(s)},
        "rules": [
            {
                "rule": r.rule.name,
                "stage": r.stage,
                "valid_f1": round(r.valid.f1, 4),
                "test_f1": round(r.test.f1, 4),
                "test_precision": round(r.test.precision, 4),
                "test_recall": round(r.test.recall, 4),
            }
            for r in cat.rules
        ],
        "match_job": runs,
    }


def table(result: dict) -> str:
    lines = ["| rule | stage | F1 valid | F1 test |", "| --- | --- | ---: | ---: |"]
    for r in result["rules"]:
        lines.append(f"| {r['rule']} | {r['stage']} | {r['valid_f1']:.4f} | {r['test_f1']:.4f} |")
    for stage, run in result["match_job"].items():
        splits = ", ".join(f"{k} {v:.4f}" for k, v in run["whole_catalogue_split_f1"].items())
        lines.append(
            f"\nwhole-catalogue `search match`, {stage} ({run['rule']}): {run['listings']} "
            f"listings in {run['seconds']}s = {run['listings_per_s']} listings/s; Shopee F1 "
            f"of every grouped listing {run['whole_catalogue_f1']} ({splits})"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, default=Path(".bench-home"))
    ap.add_argument("--wdc", type=Path, default=WDC / "catalog.jsonl")
    ap.add_argument("--synth", type=int, default=0, help="also a synthetic catalogue of N")
    ap.add_argument(
        "--synth-dir", type=Path, help="use this synthetic Shopee folder (collection: its name)"
    )
    ap.add_argument("--no-pair", action="store_true", help="stage 1 rules only")
    ap.add_argument("--skip-wdc", action="store_true")
    ap.add_argument(
        "--text-encoder",
        action="append",
        help="text encoder spec indexed beside sparse (default text; e.g. "
        "text:runs/wdc-text-ft); repeat it for several, each with its own name=",
    )
    ap.add_argument("--no-job", action="store_true", help="skip the whole-catalogue match job")
    ap.add_argument(
        "--against",
        choices=["split", "catalogue", "both"],
        default="split",
        help="tune each split matched within itself, against the whole catalogue, or both",
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    text_encoders = args.text_encoder or ["text"]
    encoders = [*text_encoders, "sparse"]
    cfg = load_config(None, store={"data_dir": args.home}, stage1={"encoders": encoders})
    results = {"cores": os.cpu_count(), "load_avg_start": os.getloadavg(), "encoders": encoders}
    jobs = [] if args.skip_wdc else [("wdc", str(args.wdc))]
    if args.synth_dir:
        jobs.append((args.synth_dir.name, str(args.synth_dir)))
    elif args.synth:
        jobs.append((f"synth{args.synth}", str(synth(args.home, args.synth))))
    jobs = [(collection_name(name, text_encoders), path) for name, path in jobs]
    modes = ["split", "catalogue"] if args.against == "both" else [args.against]
    for name, path in jobs:
        for mode in modes:
            key = name if mode == "split" else f"{name}@{mode}"
            out = args.home / "runs" / key.replace("@", "-")
            results[key] = bench(cfg, path, name, out, not args.no_pair, mode, not args.no_job)
            print(f"\n## {name}, tuned against {mode}\n\n{table(results[key])}\n", flush=True)
    results["load_avg_end"] = os.getloadavg()
    write_json(args.home / "match_bench.json", results)


if __name__ == "__main__":
    main()
