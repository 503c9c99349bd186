"""The embedded engine, a Qdrant node and a sharded, replicated cluster rank the same
listings in the same order (rank_fusion's docstring says why this needs care: the engines
add float scores in different orders, so exact ties come back a hair apart)."""

from __future__ import annotations

import random

from retrieval.index import IndexConfig, open_index
from retrieval.retriever import Retriever
from retrieval.types import Product

BRANDS = ["samsung", "apple", "xiaomi", "oppo"]
WORDS = ["galaxy", "phone", "case", "128gb", "256gb", "black", "blue", "pro", "max", "mini"]


def catalogue(n: int = 240, seed: int = 0) -> list[Product]:
    """Short titles from a small vocabulary, many of them repeated: plenty of exact ties."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        title = " ".join([rng.choice(BRANDS), *rng.sample(WORDS, rng.randint(1, 3))])
        out.append(Product(id=f"p{i:03d}", title=title, group=str(i % 40)))
    return out


def ranked(index, products, encoders, using, hybrid=()):
    retriever = Retriever.from_specs(encoders, index, "agree")
    retriever.index_dataset(products, "ds", recreate=True)
    hits = retriever.search(products, using=using, k=10, hybrid=hybrid)
    return [[(h.id) for h in row] for row in hits]


LEXICAL = ["sparse", "sparse:word,name=words"]


def test_edge_node_and_replicated_cluster_rank_alike(tmp_path, qdrant_node, qdrant_cluster):
    """One shard, on one node or replicated on three: the same order as the edge shard."""
    products = catalogue()
    edge = open_index("edge", data_dir=tmp_path)
    node = open_index("server", url=qdrant_node.url)
    cluster = open_index("server", url=qdrant_cluster.url, config=IndexConfig(replicas=3))
    try:
        for using, hybrid in (("sparse", ()), ("hybrid", ("sparse", "words"))):
            want = ranked(edge, products, LEXICAL, using, hybrid)
            assert ranked(node, products, LEXICAL, using, hybrid) == want
            assert ranked(cluster, products, LEXICAL, using, hybrid) == want
    finally:
        for idx in (edge, node, cluster):
            idx.close()


def test_sharded_cluster_ranks_dense_alike_and_idf_per_shard(tmp_path, qdrant_cluster, caplog):
    """Several shards: a dense vector still ranks as on the edge shard; a sparse vector
    with the IDF modifier cannot (Qdrant counts document frequencies per shard), and
    creating such a collection says so."""
    products = catalogue(120)
    edge = open_index("edge", data_dir=tmp_path)
    sharded = open_index("server", url=qdrant_cluster.url, config=IndexConfig(shards=3))
    try:
        want = ranked(edge, products, ["text"], "text")
        assert ranked(sharded, products, ["text"], "text") == want
        with caplog.at_level("WARNING"):
            lexical = ranked(sharded, products, ["sparse"], "sparse")
        assert "inverse document frequency per shard" in caplog.text
        assert lexical != ranked(edge, products, ["sparse"], "sparse")
    finally:
        for idx in (edge, sharded):
            idx.close()
