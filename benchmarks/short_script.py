"""The "short script" reference for pair-gbdt: RRF of MiniLM and TF-IDF, then LightGBM on
a handful of pair features.

What a user writes in 80 lines with scikit-learn, sentence-transformers and LightGBM:
exact cosine search with all-MiniLM-L6-v2 and with char 2-4-gram TF-IDF over the
split's gallery, reciprocal-rank fusion of the two lists (top ``--k``), then a
LightGBM binary model on (MiniLM cosine, TF-IDF cosine, both ranks, the RRF score,
the word Jaccard) trained on the train split, early-stopped on valid, scored on test.
Reported beside the project's pair-gbdt in ``benchmarks/stage2_bench.py``. Measured,
not asserted.

    python benchmarks/short_script.py --data ../shared/data/abt-buy
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from benchmarks.bench_report import shared_data  # noqa: E402
from retrieval.data import open_dataset  # noqa: E402
from retrieval.encoders.text import packaged_minilm  # noqa: E402

FEATURES = ("cos_minilm", "cos_tfidf", "rank_minilm", "rank_tfidf", "rrf", "jaccard")


def split_lists(dataset: Any, split: str, k: int, embed: Any, tfidf: Any) -> list[dict]:
    """Each labelled query of ``split`` with its top-``k`` RRF candidates and features."""
    products = list(dataset.products())
    flt = dataset.search_filter(split)
    gallery = [p for p in products if not flt or p.fields.get("split") == split]
    queries = [q for q in dataset.queries(split) if q.matches]
    titles = [p.title for p in gallery]
    g_dense, q_dense = embed(titles), embed([q.product.title for q in queries])
    g_sparse, q_sparse = (
        tfidf.transform(titles),
        tfidf.transform([q.product.title for q in queries]),
    )
    dense = q_dense @ g_dense.T
    lexical = (q_sparse @ g_sparse.T).toarray()
    out = []
    for i, q in enumerate(queries):
        if dataset.self_match:  # a catalogue: the query is not its own candidate
            own = [j for j, p in enumerate(gallery) if p.id == q.id]
            dense[i, own], lexical[i, own] = -np.inf, -np.inf
        rank_d = np.empty(len(gallery))
        rank_d[np.argsort(-dense[i])] = np.arange(1, len(gallery) + 1)
        rank_l = np.empty(len(gallery))
        rank_l[np.argsort(-lexical[i])] = np.arange(1, len(gallery) + 1)
        rrf = 1 / (60 + rank_d) + 1 / (60 + rank_l)
        top = np.argsort(-rrf)[:k]
        qw = set(q.product.title.lower().split())
        rows = []
        for j in top:
            cw = set(gallery[j].title.lower().split())
            rows.append(
                [
                    dense[i, j],
                    lexical[i, j],
                    rank_d[j],
                    rank_l[j],
                    rrf[j],
                    len(qw & cw) / max(1, len(qw | cw)),
                ]
            )
        labels = [int(gallery[j].id in q.matches) for j in top]
        matches = sum(p.id in q.matches for p in gallery)
        out.append({"x": np.array(rows, dtype=float), "y": labels, "matches": max(1, matches)})
    return out


def first_metrics(lists: list[dict], scores: list[np.ndarray]) -> dict[str, float]:
    """recall@1 (the matches found at rank 1 over the query's matches, as
    retrieval.metrics counts it), hit@1 and MRR@10 of lists ranked by scores."""
    hit = recall = mrr = 0.0
    for item, s in zip(lists, scores):
        order = np.argsort(-s, kind="stable")[:10]
        for r, j in enumerate(order, 1):
            if item["y"][j]:
                hit += r == 1
                recall += (r == 1) / item["matches"]
                mrr += 1 / r
                break
    n = len(lists)
    return {"recall@1": recall / n, "hit@1": hit / n, "mrr@10": mrr / n}


def run(data: str, k: int) -> dict[str, Any]:
    """Stage 1 (RRF) and the LightGBM rerank on the test split."""
    import lightgbm as lgb
    from sentence_transformers import SentenceTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer

    dataset = open_dataset(data)
    model = SentenceTransformer(packaged_minilm() or "all-MiniLM-L6-v2", device="cpu")

    def embed(texts: list[str]) -> np.ndarray:
        return model.encode(texts, batch_size=64, normalize_embeddings=True)

    tfidf = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)
    tfidf.fit([p.title for p in dataset.products()])
    splits = {s: split_lists(dataset, s, k, embed, tfidf) for s in ("train", "valid", "test")}

    def matrix(lists: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        return np.vstack([i["x"] for i in lists]), np.concatenate([i["y"] for i in lists])

    params = {
        "objective": "binary",
        "learning_rate": 0.05,
        "num_leaves": 15,
        "verbose": -1,
        "num_threads": 1,
        "seed": 0,
    }
    x, y = matrix(splits["train"])
    vx, vy = matrix(splits["valid"])
    booster = lgb.train(
        params,
        lgb.Dataset(x, y),
        1000,
        valid_sets=[lgb.Dataset(vx, vy)],
        callbacks=[lgb.early_stopping(50, verbose=False)],
    )
    test = splits["test"]
    s1 = first_metrics(test, [-np.arange(len(i["y"]), dtype=float) for i in test])
    s2 = first_metrics(test, [booster.predict(i["x"]) for i in test])
    return {"k": k, "test_queries": len(test), "stage1_rrf": s1, "short_script_gbdt": s2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(shared_data("abt-buy")))
    parser.add_argument("--k", type=int, default=50)
    args = parser.parse_args()
    print(json.dumps(run(args.data, args.k), indent=1))


if __name__ == "__main__":
    main()
