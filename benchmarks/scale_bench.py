"""Bulk loads and queries at scale on the real engines: the embedded edge shard, one Qdrant
node and a 3-peer cluster (started here from the pinned binary, ``make qdrant``).

1. **Store** N precomputed listings (a 384-d dense vector, MiniLM's size, and a payload):
   the project's load (``ServerIndex``: HNSW deferred, parallel streams, restored, waited
   green, count checked) beside qdrant-client's own ``upload_collection(parallel=2)`` of the
   same vectors into the same layout (the raw ceiling), both timed until the collection is
   green (indexed), and the upload alone; and the edge shard.
2. **Index** the N listings as a catalogue with ``search index`` (the ``sparse`` encoder:
   encode + store) into edge, the node and the cluster, and on Ray Data with 1 and 2
   workers writing to the node.
3. **Query** the dense collection: p50 latency of one query and recall@10 against exact
   search, on the node and on the cluster.

    python benchmarks/scale_bench.py                      # 200,000 listings, all of it
    python benchmarks/scale_bench.py --points 20000 --no-ray

Figures go to ``--out`` (JSON) and print as a Markdown table; docs/scale.md keeps them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the Qdrant launcher the tests use

from qdrant_server import QdrantCluster, QdrantNode, missing_reason  # noqa: E402

from retrieval.atomic import write_json  # noqa: E402
from retrieval.encoders.base import VectorSpec  # noqa: E402
from retrieval.index import IndexConfig, PointBatch, SearchRequest, open_index, point_id  # noqa: E402

DIM = 384
BATCH = 256
WORDS = (
    "samsung galaxy phone case 128gb 256gb black blue white pro max mini xiaomi redmi note "
    "apple iphone nike air zoom shoe size sony headphones wireless canon camera lens asus "
    "laptop 16gb ssd original promo new"
).split()


def catalogue(path: Path, n: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    with path.open("w") as fh:
        for i in range(n):
            title = " ".join(rng.sample(WORDS, 6)) + f" {rng.randint(1, 99999)}"
            fh.write(json.dumps({"id": f"l{i}", "title": title, "group": f"g{i // 3}"}) + "\n")
    return path


def vectors(n: int, seed: int = 0, latent: int = 32) -> np.ndarray:
    """Unit vectors shaped like a catalogue's embeddings: products (a few listings each,
    close to one another) spread over a low-dimensional space mapped into DIM dimensions.
    Plain Gaussian noise in 384 dimensions has no meaningful neighbours past the nearest."""
    rng = np.random.default_rng(seed)
    products = rng.standard_normal((n // 3 + 1, latent), dtype=np.float32)
    z = products[np.arange(n) // 3] + 0.15 * rng.standard_normal((n, latent), dtype=np.float32)
    x = z @ rng.standard_normal((latent, DIM), dtype=np.float32)
    x += (
        0.05
        * np.linalg.norm(x, axis=1, keepdims=True)
        / np.sqrt(DIM)
        * rng.standard_normal((n, DIM), dtype=np.float32)
    )
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def wait_green(client, name: str) -> None:
    while str(client.get_collection(name).status.value) != "green":
        time.sleep(0.2)


def raw_upload(url: str, name: str, vecs: np.ndarray, ids, payloads, cfg: IndexConfig) -> dict:
    """qdrant-client's own parallel upload of the same points into the same layout."""
    from qdrant_client import QdrantClient, models

    client = QdrantClient(url=url, timeout=300, check_compatibility=False)
    if client.collection_exists(name):
        client.delete_collection(name)
    client.create_collection(
        name,
        vectors_config={"text": models.VectorParams(size=DIM, distance=models.Distance.COSINE)},
        shard_number=cfg.shards,
        replication_factor=cfg.replicas,
    )
    start = time.perf_counter()
    client.upload_collection(
        name, vectors={"text": vecs}, payload=payloads, ids=ids, batch_size=BATCH, parallel=2
    )
    sent = time.perf_counter() - start
    wait_green(client, name)
    total = time.perf_counter() - start
    assert client.count(name, exact=True).count == len(ids)
    client.close()
    return {"upload_s": sent, "green_s": total}


def project_load(backend: str, where: dict, name: str, vecs, ids, payloads, cfg) -> dict:
    """The storing half of ``search index``: create, load, optimize (green), count."""
    index = open_index(backend, config=cfg, **where)
    try:
        index.create(name, [VectorSpec("text", DIM)], {"encoders": ["bench"]}, recreate=True)
        prepare = getattr(index, "prepare_load", None)
        if prepare:
            prepare(name)
        start = time.perf_counter()
        for lo in range(0, len(ids), BATCH):
            hi = lo + BATCH
            index.upsert(name, PointBatch(ids[lo:hi], {"text": list(vecs[lo:hi])}, payloads[lo:hi]))
        flush = getattr(index, "flush", None)
        if flush:
            flush()
        sent = time.perf_counter() - start
        index.optimize(name)
        total = time.perf_counter() - start
        verify = getattr(index, "verify_count", None)
        if verify:
            verify(name, "bench", len(ids))
        return {"upload_s": sent, "green_s": total}
    finally:
        index.close()


def queries(url: str, name: str, vecs: np.ndarray, cfg: IndexConfig, n: int = 200) -> dict:
    """p50 latency of one query and recall@10 against exact search."""
    rng = np.random.default_rng(1)
    picks = rng.choice(len(vecs), n, replace=False)
    q = vecs[picks] + 0.05 * rng.standard_normal((n, DIM), dtype=np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    exact = np.argsort(-(q @ vecs.T), axis=1)[:, :10]
    index = open_index("server", url=url, config=cfg)
    lat, hits = [], 0
    try:
        for i in range(n):
            t = time.perf_counter()
            got = index.search(name, [SearchRequest({"text": q[i]}, "text", 10, payload=["id"])])
            lat.append(time.perf_counter() - t)
            ids = {h.id for h in got[0]}
            hits += len(ids & {f"l{j}" for j in exact[i]})
    finally:
        index.close()
    return {"p50_ms": 1000 * statistics.median(lat), "recall@10": hits / (10 * n)}


def footprint(node: QdrantNode, name: str, vecs, ids, payloads, cfg: IndexConfig) -> dict:
    """Bytes per point on disk and in the server's memory after a load (a fresh node, so
    its resident size is the collection's)."""
    before = rss(node)
    project_load("server", {"url": node.url}, name, vecs, ids, payloads, cfg)
    folder = node.storage / "storage" / "collections" / name
    disk = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    return {"disk_b": disk / len(ids), "ram_b": (rss(node) - before) / len(ids)}


def rss(node: QdrantNode) -> int:
    for line in Path(f"/proc/{node.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def index_job(data: Path, home: Path, url: str | None, *, ray_workers: int = 0, **index) -> dict:
    from search.config import load_config

    store = {"data_dir": home} | ({"url": url} if url else {})
    cfg = load_config(None, store=store, index=index, stage1={"encoders": ["sparse"]})
    if ray_workers:
        from search.indexing_ray import index_dataset_ray

        report, _ = index_dataset_ray(
            cfg, str(data), collection="bench-index", recreate=True, workers=ray_workers
        )
    else:
        from search.indexing import index_dataset

        report, _ = index_dataset(cfg, str(data), collection="bench-index", recreate=True)
    assert report.written == report.seen, report.to_json()
    return {"seconds": report.seconds, "points_per_s": report.written / report.seconds}


SECTIONS = ("store", "footprint", "query", "index", "ray")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=200_000)
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/scale.json")
    ap.add_argument(
        "--only", default=",".join(SECTIONS), help=f"sections to run, of {','.join(SECTIONS)}"
    )
    ap.add_argument("--no-ray", action="store_true", help="leave out the Ray Data runs")
    args = ap.parse_args()
    only = {x for x in args.only.split(",") if x} - ({"ray"} if args.no_ray else set())
    if missing_reason():
        sys.exit(f"scale_bench: {missing_reason()}")
    if only - set(SECTIONS):
        sys.exit(f"scale_bench: unknown sections {sorted(only - set(SECTIONS))}")
    work = Path(tempfile.mkdtemp(prefix="scale-", dir=args.work))
    node = QdrantNode(work / "node").start()
    cluster = QdrantCluster.start(work / "cluster", size=3)
    n = args.points
    results: dict = {"points": n, "dim": DIM, "batch": BATCH, "load_before": os.getloadavg()}
    try:
        run_sections(results, only, work, node, cluster, args.out)
    finally:
        cluster.stop()
        node.stop()
        shutil.rmtree(work, ignore_errors=True)
    results["load_after"] = os.getloadavg()
    save(args.out, results)
    print(table(results))


def run_sections(results, only, work: Path, node, cluster, out: Path) -> None:
    n = results["points"]
    vecs = vectors(n)
    ids = [point_id("bench", f"l{i}") for i in range(n)]
    payloads = [{"id": f"l{i}", "dataset": "bench", "title": f"listing {i}"} for i in range(n)]
    layouts = {
        "node": (node.url, IndexConfig()),
        "cluster (3 shards, 2 replicas)": (cluster.url, IndexConfig(shards=3, replicas=2)),
    }
    if "store" in only:
        store = results["store"] = {}
        store["edge"] = project_load(
            "edge", {"data_dir": work / "edge"}, "bench", vecs, ids, payloads, IndexConfig()
        )
        for label, (url, cfg) in layouts.items():
            print(f"store: {label}", file=sys.stderr)
            raw = raw_upload(url, "bench-raw", vecs, ids, payloads, cfg)
            ours = project_load("server", {"url": url}, "bench", vecs, ids, payloads, cfg)
            store[label] = {"project": ours, "raw": raw}
            save(out, results)
    if "footprint" in only:
        results["bytes_per_point"] = {}
        for label, cfg in (
            ("float32 in RAM", IndexConfig()),
            ("int8 in RAM, float32 on disk", IndexConfig(quantization="int8", on_disk=True)),
        ):
            print(f"footprint: {label}", file=sys.stderr)
            fresh = QdrantNode(work / f"foot-{len(results['bytes_per_point'])}").start()
            try:
                results["bytes_per_point"][label] = footprint(
                    fresh, "foot", vecs, ids, payloads, cfg
                )
            finally:
                fresh.stop()
            save(out, results)
    if "query" in only:
        results["query"] = {}
        for label, (url, cfg) in layouts.items():
            print(f"query: {label}", file=sys.stderr)
            if "store" not in only:
                project_load("server", {"url": url}, "bench", vecs, ids, payloads, cfg)
            results["query"][label] = queries(url, "bench", vecs, cfg)
        save(out, results)
    if not only & {"index", "ray"}:
        return
    data = catalogue(work / "catalogue.jsonl", n)
    runs = results["index"] = {}
    if "index" in only:
        print("index: edge, node, cluster", file=sys.stderr)
        runs["edge"] = index_job(data, work / "home-edge", None)
        runs["node"] = index_job(data, work / "home-node", node.url)
        runs["cluster (3 shards, 2 replicas)"] = index_job(
            data, work / "home-cluster", cluster.url, shards=3, replicas=2
        )
        save(out, results)
    if "ray" in only:
        for workers in (1, 2):
            print(f"index: ray, {workers} worker(s)", file=sys.stderr)
            runs[f"node, Ray {workers} worker(s)"] = index_job(
                data, work / f"home-ray{workers}", node.url, ray_workers=workers
            )
            save(out, results)


def save(path: Path, results: dict) -> None:
    """Results so far (a long run that fails late keeps what it measured)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, results)


def table(r: dict) -> str:
    n = r["points"]
    lines = [
        f"Store {n:,} precomputed listings (384-d + payload), until green:",
        "",
        "| where | project (points/s) | raw upload_collection (points/s) | ratio |",
        "| --- | --- | --- | --- |",
    ]
    if "edge" in r.get("store", {}):
        lines.append(f"| edge | {n / r['store']['edge']['green_s']:,.0f} | | |")
    for label, row in r.get("store", {}).items():
        if label == "edge":
            continue
        ours, raw = n / row["project"]["green_s"], n / row["raw"]["green_s"]
        lines.append(f"| {label} | {ours:,.0f} | {raw:,.0f} | {ours / raw:.2f} |")
    lines += ["", "| 384-d point + payload | disk B/point | server RAM B/point |"]
    lines += ["| --- | --- | --- |"]
    for label, row in r.get("bytes_per_point", {}).items():
        lines.append(f"| {label} | {row['disk_b']:,.0f} | {row['ram_b']:,.0f} |")
    lines += ["", "| query (one at a time) | p50 ms | recall@10 |", "| --- | --- | --- |"]
    for label, row in r.get("query", {}).items():
        lines.append(f"| {label} | {row['p50_ms']:.2f} | {row['recall@10']:.3f} |")
    lines += ["", f"`search index` of {n:,} listings (sparse encoder: encode + store):", ""]
    load = f"load average {r['load_before'][0]:.1f} before, {r['load_after'][0]:.1f} after"
    lines.insert(0, f"({os.cpu_count()} CPUs, {load})\n")
    lines += ["| where | points/s | seconds |", "| --- | --- | --- |"]
    for label, row in r.get("index", {}).items():
        lines.append(f"| {label} | {row['points_per_s']:,.0f} | {row['seconds']:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
