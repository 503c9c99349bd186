"""Text bi-encoder training: group-aware batches, too-few-groups, the loss falls, the
saved model reloads as ``text:OUT`` with the checkpoint's embeddings, --resume, NaN."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")
pytest.importorskip("datasets")

from retrieval.data import open_dataset  # noqa: E402
from retrieval.errors import UsageError  # noqa: E402
from retrieval.types import Product, Query  # noqa: E402
from training.resume import TrainingDivergedError  # noqa: E402
from training.text import (  # noqa: E402
    GroupedTextBatchSampler,
    PairRows,
    TextBiencoderConfig,
    build_rows,
    check_groups,
    train_text_biencoder,
)

BRANDS = ["samsung galaxy", "xiaomi redmi", "nike air zoom", "apple iphone", "usb cable"]


def rows(n: int = 20) -> PairRows:
    cols = {"anchor": [], "positive": []}
    groups = []
    for i in range(n):
        brand = BRANDS[i % 5]
        cols["anchor"].append(f"{brand} {i % 10}")
        cols["positive"].append(f"{brand} {i % 10} original murah")
        groups.append(f"g{i % 10}")
    return PairRows(cols, groups, [frozenset()] * n)


def config(**kw) -> TextBiencoderConfig:
    base = dict(epochs=3, batch_size=4, lr=1e-3, warmup=0.1, save_steps=5, max_length=32)
    return TextBiencoderConfig(**{**base, **kw})


def test_rows_and_group_aware_batches(synth_set):
    dataset = open_dataset(str(synth_set))
    products = {p.id: p for p in dataset.products()}
    queries = [q for q in dataset.queries("train") if q.matches]
    pairs = build_rows(queries, products)
    assert len(pairs) == sum(len(q.matches) for q in queries)
    group_of = {q.id: q.product.group for q in queries}
    comps = {}
    for qid, g in zip([q.id for q in queries for _ in q.matches], pairs.groups):
        comps.setdefault(g, set()).add(group_of[qid])
    assert all(len(v) == 1 for v in comps.values())  # one component per product group
    sampler = GroupedTextBatchSampler(
        pairs, 8, False, groups=pairs.groups, neg_groups=pairs.neg_groups
    )
    seen = []
    for batch in sampler:
        groups = [pairs.groups[i] for i in batch]
        assert len(groups) == len(set(groups))  # never two rows of one group
        seen += batch
    assert sorted(seen) == list(range(len(pairs)))
    sampler.set_epoch(1)
    assert list(sampler) != list(GroupedTextBatchSampler(pairs, 8, False, groups=pairs.groups))


def test_negatives_columns_and_clashes():
    products = {f"p{i}": Product(f"p{i}", f"item {i}") for i in range(6)}
    queries = [Query(Product("p0", "item 0"), ("p1",)), Query(Product("p2", "item 2"), ("p3",))]
    mined = [{"query_id": "p0", "neg_ids": ["p2", "p4"]}, {"query_id": "p2", "neg_ids": []}]
    pairs = build_rows(queries, products, mined, hard_negatives=3)
    assert len(pairs) == 1  # p2 has no mined negatives: left out
    assert pairs.columns["negative_3"] == ["item 2"]  # too few negatives: cycled
    sampler = GroupedTextBatchSampler(
        None, 2, False, groups=["a", "b"], neg_groups=[frozenset({"b"}), frozenset()]
    )
    assert all(len(b) == 1 for b in sampler)  # a's negative is of b's group: kept apart


def test_mined_negatives_titled_like_the_query_or_a_match_are_dropped(caplog):
    products = {
        "p1": Product("p1", "Kingston 8GB DDR3 CL10"),
        "p2": Product("p2", "kingston 8gb  ddr3"),  # the query's title, another group
        "p3": Product("p3", "KINGSTON 8GB DDR3 cl10"),  # the match's title, another group
        "p4": Product("p4", "Corsair 8GB DDR3"),
    }
    queries = [Query(Product("p0", "Kingston 8GB DDR3"), ("p1",))]
    mined = [{"query_id": "p0", "neg_ids": ["p2", "p3", "p4"]}]
    with caplog.at_level("WARNING"):
        pairs = build_rows(queries, products, mined, hard_negatives=2)
    assert pairs.columns["negative_1"] == pairs.columns["negative_2"] == ["Corsair 8GB DDR3"]
    assert "2 mined negatives titled like their query or a match" in caplog.text
    only_clones = [{"query_id": "p0", "neg_ids": ["p2"]}]
    assert len(build_rows(queries, products, only_clones)) == 0  # nothing left to learn from


def test_too_few_groups_says_so_before_training():
    with pytest.raises(UsageError, match="only 10 match groups.*--batch-size 16"):
        check_groups(rows(), 16)


def test_loss_falls_reload_and_resume(tiny_bert, tmp_path):
    from sentence_transformers import SentenceTransformer

    from retrieval.encoders.text import build_text

    out = tmp_path / "st"
    # lr 2e-2: at 1e-3 the tiny model barely moves in 20 steps and the loss only wobbles
    first = train_text_biencoder(rows(), str(tiny_bert), out, config(epochs=2, lr=2e-2))
    assert first["global_step"] == 10
    more = train_text_biencoder(rows(), str(tiny_bert), out, config(epochs=4, lr=2e-2), resume=True)
    assert more["global_step"] == 20  # continued from checkpoint-10, not restarted
    losses = more["losses"]
    assert len(losses) == 20 and np.mean(losses[-5:]) < np.mean(losses[:5])
    texts = [Product("a", "samsung galaxy 1"), Product("b", "nike air zoom 2")]
    saved = np.stack(build_text(str(out), device="cpu").encode(texts).vectors["text"])
    ckpt = SentenceTransformer(str(out / "checkpoints" / "checkpoint-20"), device="cpu")
    again = ckpt.encode([p.title for p in texts], normalize_embeddings=True)
    assert np.allclose(saved, again, atol=1e-5)


def test_nan_loss_stops_with_the_step(tiny_bert, tmp_path, monkeypatch):
    from sentence_transformers.losses import MultipleNegativesRankingLoss

    real, calls = MultipleNegativesRankingLoss.compute_loss_from_embeddings, {"n": 0}

    def poisoned(self, *args, **kwargs):
        calls["n"] += 1
        loss = real(self, *args, **kwargs)
        return loss * float("nan") if calls["n"] >= 7 else loss

    monkeypatch.setattr(MultipleNegativesRankingLoss, "compute_loss_from_embeddings", poisoned)
    with pytest.raises(TrainingDivergedError, match="at step 7.*checkpoint-5"):
        train_text_biencoder(rows(), str(tiny_bert), tmp_path / "st", config())
    assert not (tmp_path / "st" / "checkpoints" / "checkpoint-10").exists()


def test_cached_loss_trains(tiny_bert, tmp_path):
    summary = train_text_biencoder(
        rows(),
        str(tiny_bert),
        tmp_path / "st",
        config(epochs=1, loss="cached-mnrl", mini_batch_size=2),
    )
    assert summary["global_step"] == 5 and all(np.isfinite(summary["losses"]))


def test_quiet_prints_no_bar_or_log_line_a_step(tiny_bert, tmp_path, capsys):
    """The recipe's own bar follows the steps: the Trainer's bar and its per-step log dicts
    (``logging_steps=1`` for the NaN guard) are left out, the training is the same."""
    summary = train_text_biencoder(
        rows(), str(tiny_bert), tmp_path / "st", config(epochs=1, lr=2e-2), quiet=True
    )
    printed = capsys.readouterr()
    assert summary["global_step"] > 0 and summary["losses"]
    assert "'loss'" not in printed.out + printed.err
    steps = summary["global_step"]
    assert f"/{steps} [" not in printed.err  # the Trainer's bar ("3/5 [00:01<...") is gone
