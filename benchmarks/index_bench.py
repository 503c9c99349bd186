"""Vector index benchmark: the embedded edge back-end (through ``VectorIndex``) against
exact numpy search, on clustered unit vectors.

Measures upsert rate, HNSW build time (``optimize()``), single-query latency p50/p95
per ``hnsw_ef``, batched throughput and recall@k against exact search, and writes a
JSON file and a Markdown table. Measured, not asserted.

    python benchmarks/index_bench.py              # 100,000 x 512, about 10 minutes on 2 cores
    python benchmarks/index_bench.py --quick      # 20,000 x 512 smoke run
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from benchmarks.bench_report import (  # noqa: E402
    load_average,
    machine_info,
    render_table,
    write_markdown,
)
from retrieval.encoders.base import VectorSpec  # noqa: E402
from retrieval.index import IndexConfig, PointBatch, SearchRequest, open_index, point_id  # noqa: E402

DATASET = "bench"
VECTOR = "v"
console = Console()


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def make_data(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Base vectors, held-out queries and every vector's cluster, from one fixed seed.

    Cluster centres sit around ``--categories`` category centres (sibling centres have
    cosine about 0.5), and a point is its centre plus gaussian noise of relative norm
    ``--noise`` (same-cluster cosine about 0.67 at 0.7). The hierarchy gives the true
    neighbours past a point's own cluster (clusters hold about k points) a graded order
    instead of leaving them to chance. Queries are drawn from the same distribution.
    """
    rng = np.random.default_rng(args.seed)
    d, total = args.dim, args.n + args.queries

    def gauss(rows: int) -> np.ndarray:
        return rng.standard_normal((rows, d), dtype=np.float32) / np.float32(np.sqrt(d))

    if args.categories > 0:
        cats = unit(rng.standard_normal((args.categories, d), dtype=np.float32))
        parent = rng.integers(args.categories, size=args.clusters)
        centres = unit(cats[parent] + gauss(args.clusters))
    else:
        centres = unit(rng.standard_normal((args.clusters, d), dtype=np.float32))
    label = rng.integers(args.clusters, size=total)
    out = np.empty((total, d), dtype=np.float32)
    for start in range(0, total, 50_000):  # chunks keep the temporaries small
        stop = min(start + 50_000, total)
        out[start:stop] = unit(centres[label[start:stop]] + args.noise * gauss(stop - start))
    return out[: args.n], out[args.n :], label


def exact_topk(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Top-k row indices by dot product, best first (matrix product + argpartition)."""
    scores = queries @ base.T
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1)
    return np.take_along_axis(part, order, axis=1)


def recall(found: list[np.ndarray], truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(np.intersect1d(f, t)) / k for f, t in zip(found, truth)]))


def latency_row(name: str, ef: int | None, times: list[float], qps: float, rec: float) -> dict:
    ms = np.asarray(times) * 1e3
    return {
        "backend": name,
        "ef": ef,
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "mean_ms": float(ms.mean()),
        "batch_qps": qps,
        "recall": rec,
        "load_1m": load_average()[:1] or None,
    }


def bench_numpy(base: np.ndarray, queries: np.ndarray, args: argparse.Namespace) -> tuple:
    """Exact search: one query at a time, then batches; returns (row, ground truth)."""
    k, times = args.k, []
    with progress() as bar:
        task = bar.add_task("numpy single", total=len(queries))
        for q in queries:
            t0 = time.perf_counter()
            scores = base @ q
            part = np.argpartition(-scores, k - 1)[:k]
            _ranked = part[np.argsort(-scores[part])]  # best first, as a caller needs it
            times.append(time.perf_counter() - t0)
            bar.advance(task)
    t0 = time.perf_counter()
    truth = np.concatenate(
        [
            exact_topk(base, queries[i : i + args.batch], k)
            for i in range(0, len(queries), args.batch)
        ]
    )
    qps = len(queries) / (time.perf_counter() - t0)
    return latency_row("numpy exact", None, times, qps, 1.0), truth


def build_edge(root: Path, name: str, cfg: IndexConfig, base: np.ndarray, args) -> dict:
    """Create, upsert in batches and optimize one collection; returns the build figures."""
    ids = [point_id(DATASET, str(i)) for i in range(len(base))]
    index = open_index("edge", data_dir=root, config=cfg)
    index.create(name, [VectorSpec(VECTOR, args.dim)], {"dataset": DATASET}, recreate=True)
    upsert_s = 0.0
    with progress() as bar:
        task = bar.add_task(f"upsert {name}", total=len(base))
        for start in range(0, len(base), args.upsert_batch):
            stop = min(start + args.upsert_batch, len(base))
            vecs = {VECTOR: list(base[start:stop])}
            payloads = [{"id": str(i), "dataset": DATASET} for i in range(start, stop)]
            t0 = time.perf_counter()
            index.upsert(name, PointBatch(ids[start:stop], vecs, payloads))
            upsert_s += time.perf_counter() - t0
            bar.advance(task, stop - start)
    console.print(f"[dim]{name}: upserted {len(base):,} points in {upsert_s:.1f} s; optimizing")
    t0 = time.perf_counter()
    index.optimize(name)
    optimize_s = time.perf_counter() - t0
    shard_info = index._shard(name).info()  # private: the engine's own view of the build
    build = {
        "upsert_s": upsert_s,
        "upsert_pts_per_s": len(base) / upsert_s,
        "optimize_s": optimize_s,
        "points": shard_info.points_count,
        "indexed_vectors": shard_info.indexed_vectors_count,
        "segments": shard_info.segments_count,
        "load_1m": load_average()[:1] or None,
    }
    index.close()
    return build


def bench_edge(
    root: Path, name: str, cfg: IndexConfig, queries: np.ndarray, truth: np.ndarray, args
) -> list[dict]:
    """Single-query latency, batched throughput and recall at every ``--ef``, each ef on a
    fresh ``EdgeIndex`` opened with that ``IndexConfig`` over the same data dir."""
    rows = []
    reqs = [
        SearchRequest(vectors={VECTOR: q}, using=VECTOR, limit=args.k, payload=["id"])
        for q in queries
    ]
    for ef in args.ef:
        index = open_index("edge", data_dir=root, config=replace(cfg, hnsw_ef=ef))
        for req in reqs[: args.warmup]:  # load the shard, fault pages in
            index.search(name, [req])
        times, found = [], []
        with progress() as bar:
            task = bar.add_task(f"{name} ef={ef}", total=len(reqs))
            for req in reqs:
                t0 = time.perf_counter()
                hits = index.search(name, [req])[0]
                times.append(time.perf_counter() - t0)
                found.append(np.fromiter((int(h.id) for h in hits), dtype=np.int64))
                bar.advance(task)
        t0 = time.perf_counter()
        for i in range(0, len(reqs), args.batch):
            index.search(name, reqs[i : i + args.batch])
        qps = len(reqs) / (time.perf_counter() - t0)
        index.close()
        rows.append(latency_row(name, ef, times, qps, recall(found, truth)))
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=100_000, help="base vectors")
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--queries", type=int, default=1_000, help="held-out query vectors")
    p.add_argument("--clusters", type=int, default=1_000)
    p.add_argument("--categories", type=int, default=50, help="groups of clusters; 0 = flat")
    p.add_argument("--noise", type=float, default=0.7, help="noise norm relative to centre")
    p.add_argument("--k", type=int, default=100, help="results per query (recall@k)")
    p.add_argument("--ef", type=int, nargs="+", default=[32, 64, 128, 256, 512])
    p.add_argument("--batch", type=int, default=64, help="queries per batched search")
    p.add_argument("--upsert-batch", type=int, default=1_000)
    p.add_argument("--warmup", type=int, default=50, help="untimed queries per ef")
    p.add_argument("--hnsw-m", type=int, default=IndexConfig.hnsw_m)
    p.add_argument("--ef-construct", type=int, default=IndexConfig.hnsw_ef_construct)
    p.add_argument("--no-int8", action="store_true", help="skip the int8 quantization rows")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", type=Path, help="edge data dir (default: a temp folder)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/index_bench.json"))
    p.add_argument("--quick", action="store_true", help="smoke run: N=20,000")
    args = p.parse_args(argv)
    if args.quick:
        args.n = min(args.n, 20_000)
    return args


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    machine, t0 = machine_info(), time.perf_counter()
    base, queries, _ = make_data(args)
    console.print(
        f"data: {args.n:,} x {args.dim} base, {len(queries):,} queries, "
        f"{args.clusters:,} clusters in {args.categories} categories "
        f"({time.perf_counter() - t0:.1f} s)"
    )
    numpy_row, truth = bench_numpy(base, queries, args)
    cfg = IndexConfig(hnsw_m=args.hnsw_m, hnsw_ef_construct=args.ef_construct)
    configs = {"edge": cfg}
    if not args.no_int8:
        configs["edge int8"] = replace(cfg, quantization="int8")
    builds, rows = {}, []
    for label, c in configs.items():
        name = label.replace(" ", "_")
        builds[label] = build_edge(root, name, c, base, args)
        rows += [{**r, "backend": label} for r in bench_edge(root, name, c, queries, truth, args)]
    rows.append(numpy_row)
    return {
        "machine": machine,
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "index_config": cfg.__dict__,
        "build": builds,
        "results": rows,
        "wall_s": time.perf_counter() - t0,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.data_dir is not None:
        report = run(args, args.data_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="index-bench-") as tmp:
            report = run(args, Path(tmp))
    report["machine"]["loadavg_end"] = load_average()
    report["command"] = " ".join(["python benchmarks/index_bench.py", *(argv or sys.argv[1:])])
    console.print(render_table(report))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    md = args.out.with_suffix(".md")
    write_markdown(report, md)
    console.print(f"wrote {args.out} and {md}")


if __name__ == "__main__":
    main()
