"""Stage-1 evaluation benchmark: a synthetic catalogue of the Shopee train size (34,250
listings) on the embedded index, with CPU encoders (``sparse`` and ``phash``).

Synthesises the catalogue (cached in ``--data``), indexes it, timing the encoders
apart from the upserts and the HNSW build, then runs the evaluator's stage 1
(``search.evaluation.evaluate.run_split``: the batched pipeline, which times its own stages)
for each vector asked, every listing a query against the whole catalogue with itself
excluded (the competition's setting on its train set), and scores it with
``search.evaluation.scoring.score_stages``. Reports query encoding apart from index search,
queries per second, latency per query (batch time / batch size) and recall@k.
Measured, not asserted.

    python benchmarks/eval_bench.py                   # 34,250 listings, all of them queries
    python benchmarks/eval_bench.py --queries 5000    # a sample of the listings as queries
    python benchmarks/eval_bench.py --quick           # 3,000 listings, a smoke run
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from benchmarks.bench_report import load_average, machine_info  # noqa: E402
from retrieval.data import open_dataset  # noqa: E402
from retrieval.data.base import Dataset, group_queries  # noqa: E402
from retrieval.data.synth import synthesize  # noqa: E402
from retrieval.index import open_index  # noqa: E402
from retrieval.retriever import Retriever  # noqa: E402
from retrieval.types import Product, Query  # noqa: E402
from search.config import EvalConfig, Stage1Config, Stage2Config  # noqa: E402
from search.evaluation.evaluate import run_split  # noqa: E402
from search.evaluation.scoring import score_stages  # noqa: E402
from search.pipeline import Pipeline  # noqa: E402

console = Console()
MEAN_GROUP = 3.45  # mean listings per synthetic group


class Catalogue(Dataset):
    """The first ``n`` listings of the synthetic set; every listing queries all others."""

    name = "bench"
    format = "shopee"
    self_match = True

    def __init__(self, products: list[Product]) -> None:
        self._products = products

    def products(self) -> Iterator[Product]:
        return iter(self._products)

    def queries(self, split: str | None = None) -> list[Query]:
        return group_queries(self._products)

    def search_filter(self, split: str | None) -> dict[str, str] | None:
        return None


def bars() -> Progress:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    return Progress(*columns, TimeElapsedColumn(), console=console, transient=True)


def catalogue(args: argparse.Namespace) -> list[Product]:
    """The synthetic listings, synthesised once per size into ``--data``."""
    folder = args.data / f"synth-{args.listings}-{args.image_size}"
    if not (folder / "train.csv").exists():
        groups = int(args.listings / MEAN_GROUP * 1.05) + 10
        start = time.perf_counter()
        synthesize(folder, groups=groups, seed=args.seed, image_size=args.image_size)
        console.print(f"synthesised {groups} groups in {time.perf_counter() - start:.1f}s")
    products = list(open_dataset(folder).products())
    if len(products) < args.listings:
        raise SystemExit(f"only {len(products)} listings synthesised; raise MEAN_GROUP's margin")
    return products[: args.listings]


def timed(obj: Any, name: str, sink: dict[str, float]) -> None:
    """Accumulate the wall time of ``obj.name(...)`` calls into ``sink[name]``."""
    fn = getattr(obj, name)

    def wrapper(*a: Any, **kw: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            sink[name] = sink.get(name, 0.0) + time.perf_counter() - start

    setattr(obj, name, wrapper)


def index_catalogue(retriever: Retriever, products: list[Product]) -> dict[str, float]:
    """Index the listings; seconds spent encoding, upserting and building HNSW."""
    sink: dict[str, float] = {}
    for obj, name in (
        (retriever, "encode"),
        (retriever.index, "upsert"),
        (retriever.index, "optimize"),
    ):
        timed(obj, name, sink)
    with bars() as bar:
        task = bar.add_task("indexing", total=len(products))
        report = retriever.index_dataset(products, "bench", progress=lambda n: bar.advance(task, n))
    return {
        "listings": len(products),
        "written": report.written,
        "unreadable_images": len(report.failures),
        "total_s": report.seconds,
        "encode_s": sink.get("encode", 0.0),
        "upsert_s": sink.get("upsert", 0.0),
        "optimize_s": sink.get("optimize", 0.0),
        "encode_listings_per_s": len(products) / max(sink.get("encode", 0.0), 1e-9),
    }


def evaluate_vector(
    retriever: Retriever, data: Catalogue, queries: list[Query], vector: str, args
) -> dict:
    """One stage-1 evaluation of the sampled queries on one vector (or hybrid)."""
    stage1 = Stage1Config(k=args.k, vector=vector, batch_size=args.batch)
    ev = EvalConfig(ks=[1, 5, 10, 50, 100])
    with bars() as bar:
        task = bar.add_task(f"stage 1 · {vector}", total=len(queries))
        start = time.perf_counter()
        rows = run_split(
            Pipeline(retriever, None, stage1, Stage2Config(n=min(10, args.k))),
            data,
            "all",
            queries,
            lambda d, t: lambda n: bar.advance(task, n),
        )
        stage1_s = time.perf_counter() - start
    start = time.perf_counter()
    gallery = {p.id for p in data.products()}
    scored = score_stages(rows, None, gallery, True, ev, {}, reranked=False)
    m = scored.metrics
    keep = ("recall@1", "recall@10", f"recall@{args.k}", "mrr@10", "f1_nearest")
    return {
        "vector": vector,
        "queries": len(queries),
        "stage1_s": stage1_s,
        "scoring_s": time.perf_counter() - start,
        "qps": len(queries) / stage1_s,
        "encode_ms_per_query": m["stage1/encode_ms_per_query"],
        "search_ms_per_query": m["stage1/search_ms_per_query"],
        "latency_p50_ms": m["stage1/latency_p50_ms"],
        "latency_p95_ms": m["stage1/latency_p95_ms"],
        **{name: m[f"stage1/{name}"] for name in keep if f"stage1/{name}" in m},
    }


def markdown(report: dict[str, Any]) -> str:
    """The results as a Markdown page."""
    a, ix, mc = report["args"], report["index"], report["machine"]
    lines = [
        "# Stage-1 evaluation benchmark",
        "",
        f"{ix['listings']:,} synthetic listings (image {a['image_size']} px), encoders "
        f"{', '.join(a['encoders'])}, k={a['k']}, batches of {a['batch']}; every sampled listing "
        "queries the whole catalogue, itself excluded.",
        "",
        f"Machine: {mc['cpu']}, {mc['usable_cores']} usable cores, {mc['memory']} RAM; "
        f"qdrant-edge-py {mc['qdrant-edge-py']}. Load average at start {mc['loadavg_start']}, "
        f"at end {report['loadavg_end']}.",
        "",
        f"Indexing: {ix['total_s']:.1f} s in all; encoding {ix['encode_s']:.1f} s "
        f"({ix['encode_listings_per_s']:,.0f} listings/s), upserts {ix['upsert_s']:.1f} s, "
        f"HNSW build {ix['optimize_s']:.1f} s.",
        "",
        "| vector | queries | stage 1 s | queries/s | encode ms/q | search ms/q | p50 ms | "
        "p95 ms | recall@1 | recall@10 | scoring s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in report["runs"]:
        lines.append(
            f"| {r['vector']} | {r['queries']:,} | {r['stage1_s']:.1f} | {r['qps']:,.0f} | "
            f"{r['encode_ms_per_query']:.2f} | {r['search_ms_per_query']:.2f} | "
            f"{r['latency_p50_ms']:.2f} | {r['latency_p95_ms']:.2f} | {r['recall@1']:.4f} | "
            f"{r['recall@10']:.4f} | {r['scoring_s']:.1f} |"
        )
    lines += ["", "Latency per query is each batch's time divided by its size."]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listings", type=int, default=34_250, help="catalogue size")
    p.add_argument("--queries", type=int, default=0, help="sampled query listings (0: all)")
    p.add_argument("--encoders", nargs="+", default=["sparse", "phash"])
    p.add_argument("--vectors", nargs="+", default=["sparse", "phash", "hybrid"])
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--batch", type=int, default=128, help="queries per pipeline batch")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "eval-bench")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/eval_bench.json"))
    p.add_argument("--quick", action="store_true", help="smoke run: 3,000 listings")
    args = p.parse_args(argv)
    if args.quick:
        args.listings = 3_000
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    machine = machine_info()
    products = catalogue(args)
    data = Catalogue(products)
    queries = data.queries()
    if args.queries and args.queries < len(queries):
        queries = random.Random(args.seed).sample(queries, args.queries)
    with tempfile.TemporaryDirectory(dir=args.data) as home:
        index = open_index("edge", data_dir=home)
        try:
            retriever = Retriever.from_specs(args.encoders, index, "bench")
            indexed = index_catalogue(retriever, products)
            console.print(f"indexed {indexed['listings']:,} listings in {indexed['total_s']:.1f}s")
            runs = []
            for vector in args.vectors:
                runs.append(evaluate_vector(retriever, data, queries, vector, args))
                console.print(runs[-1])
        finally:
            index.close()
    report = {"args": {**vars(args), "data": str(args.data), "out": str(args.out)}}
    report |= {"machine": machine, "index": indexed, "runs": runs, "loadavg_end": load_average()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    args.out.with_suffix(".md").write_text(markdown(report))
    console.print(markdown(report))


if __name__ == "__main__":
    main()
