"""benchmarks/match_bench.py names a collection per text encoder, so a fine-tuned
encoder's run never reuses the zero-shot vectors of an earlier one in the same home."""

from __future__ import annotations

from helpers.benches import load_bench

from retrieval.index.base import check_collection_name


def test_collection_per_text_encoder() -> None:
    name = load_bench("match_bench").collection_name
    assert name("wdc", ["text"]) == "wdc"  # the packaged MiniLM keeps the old collection
    assert name("wdc", ["text:runs/wdc-text-ft"]) == "wdc-wdc-text-ft"
    assert name("wdc", ["text:/tmp/a b/ft/"]) == "wdc-ft"  # trailing slash, folder name only
    assert name("wdc", ["text", "text:runs/ft,name=ft"]) == "wdc-ft"  # options not the name
    assert name("wdc", ["text:runs/a", "text:runs/b,name=b"]) == "wdc-a-b"
    odd = name("wdc", ["text:runs/é:x*y"])
    assert odd == "wdc-x-y"
    assert check_collection_name(odd) == odd
    long = name("wdc", ["text:" + "a" * 200])
    assert len(long) == 64 and check_collection_name(long) == long
