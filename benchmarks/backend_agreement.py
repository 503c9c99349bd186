"""Do the embedded engine and a Qdrant server rank alike? A query/gallery set indexed
with one encoder on both, every query searched on both, the top-k lists compared.

    python benchmarks/backend_agreement.py                       # Abt-Buy, sparse, k=10
    python benchmarks/backend_agreement.py --data DIR --encoder text --k 20

Needs the pinned server binary (``make qdrant``). Prints how many queries rank
differently, how many differ in their set of listings, and how many scores of one
listing differ between the engines (docs/scale.md, "What the back-ends agree on").
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the Qdrant launcher the tests use

from conftest import shared_dataset  # noqa: E402
from qdrant_server import QdrantNode, missing_reason  # noqa: E402

from retrieval.data import open_dataset  # noqa: E402
from retrieval.index import open_index  # noqa: E402
from retrieval.retriever import Retriever  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="a query/gallery folder (default: abt-buy)")
    ap.add_argument("--encoder", default="sparse")
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    if missing_reason():
        sys.exit(f"backend_agreement: {missing_reason()}")
    data = args.data or shared_dataset("abt-buy")
    if data is None:
        sys.exit("backend_agreement: no --data and no shared abt-buy set")
    dataset = open_dataset(str(data))
    queries = [q.product for q in dataset.queries()]
    work = Path(tempfile.mkdtemp(prefix="agree-"))
    node = QdrantNode(work / "node").start()
    hits = {}
    try:
        for backend in ("edge", "server"):
            index = open_index(backend, data_dir=work / "edge", url=node.url)
            try:
                retriever = Retriever.from_specs([args.encoder], index, "agree")
                retriever.index_dataset(dataset.products(), dataset.name, recreate=True)
                using = retriever.vector_names()[0]
                hits[backend] = retriever.search(queries, using=using, k=args.k)
            finally:
                index.close()
    finally:
        node.stop()
    order = members = scores = compared = 0
    worst = 0.0
    for a, b in zip(hits["edge"], hits["server"]):
        ids_a, ids_b = [h.id for h in a], [h.id for h in b]
        order += ids_a != ids_b
        members += set(ids_a) != set(ids_b)
        other = {h.id: h.score for h in b}
        for h in a:
            if h.id in other:
                compared += 1
                gap = abs(h.score - other[h.id])
                scores += gap > 0
                worst = max(worst, gap / max(abs(h.score), 1e-12))
    print(
        f"{len(queries)} queries, {args.encoder}, k={args.k}: {order} ranked differently, "
        f"{members} with other listings; {scores} of {compared} scores of one listing differ "
        f"(at most {worst:.1e} of their value)"
    )


if __name__ == "__main__":
    main()
