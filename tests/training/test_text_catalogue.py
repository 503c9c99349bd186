"""The hard negatives of the catalogue fine-tuning (``training.text_catalogue.mine_train``):
mined by the real packaged MiniLM from the train split alone, nearest first, never of the
query's group, identical titles left to ``build_rows``' guard."""

from __future__ import annotations

import pytest

from retrieval.types import Product, Query

pytest.importorskip("sentence_transformers")

from retrieval.encoders.text import packaged_minilm  # noqa: E402
from training.text import build_rows  # noqa: E402
from training.text_catalogue import TextFitArgs, mine_train  # noqa: E402

TITLES = {  # group -> its two train titles
    "ip64": ["Apple iPhone 12 64GB black smartphone", "iPhone 12 64 GB Black Apple"],
    "ip128": ["Apple iPhone 12 128GB black smartphone", "iPhone 12 128 GB Black Apple"],
    "tv": ["Samsung 55 inch QLED 4K television", "Samsung QLED TV 55in 4K"],
    "drill": ["Bosch cordless drill 18V with two batteries", "Bosch 18 V cordless drill kit"],
}


@pytest.fixture(scope="module")
def catalogue() -> tuple[list[Query], dict[str, Product]]:
    products: dict[str, Product] = {}
    for group, titles in TITLES.items():
        for i, title in enumerate(titles):
            pid = f"{group}-{i}"
            products[pid] = Product(pid, title, group=group, fields={"split": "train"})
    # a valid listing that reads exactly like the 64GB phones: never a training negative
    products["v"] = Product(
        "v", "Apple iPhone 12 64GB black", group="ip64v", fields={"split": "valid"}
    )
    queries = [
        Query(p, tuple(o for o in products if o != p.id and products[o].group == p.group))
        for p in products.values()
        if p.fields["split"] == "train"
    ]
    return queries, products


@pytest.fixture(scope="module")
def minilm() -> str:
    path = packaged_minilm()
    if path is None:
        pytest.skip("the packaged all-MiniLM-L6-v2 is not installed")
    return str(path)


@pytest.fixture(scope="module")
def start(minilm):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(minilm, device="cpu")


def test_the_nearest_train_title_of_another_group_is_mined(catalogue, minilm, start, tmp_path):
    queries, products = catalogue
    args = TextFitArgs(model=minilm, out=tmp_path, hard_negatives=1)
    mined = mine_train(queries, products, start, args)
    assert {r["query_id"] for r in mined} == {q.id for q in queries}
    for row in mined:
        group = products[row["query_id"]].group
        assert row["neg_ids"], row
        assert all(products[n].group != group for n in row["neg_ids"])
        assert "v" not in row["neg_ids"]  # the valid split is never trained on
    first = {r["query_id"]: r["neg_ids"][0] for r in mined}
    # the phone that differs only in storage is the hardest negative of each phone
    for pid in ("ip64-0", "ip64-1"):
        assert products[first[pid]].group == "ip128"
    for pid in ("ip128-0", "ip128-1"):
        assert products[first[pid]].group == "ip64"
    # spares beyond the one used, for build_rows' identical-title guard
    assert all(len(r["neg_ids"]) == 3 for r in mined)
    assert (
        mine_train(queries, products, start, args) == mined
    )  # deterministic: a resume mines the same


def test_rows_carry_one_negative_column_and_none_without_mining(catalogue, minilm, start, tmp_path):
    queries, products = catalogue
    args = TextFitArgs(model=minilm, out=tmp_path, hard_negatives=1)
    rows = build_rows(queries, products, mine_train(queries, products, start, args), 1)
    assert set(rows.columns) == {"anchor", "positive", "negative_1"}
    assert len(rows) == len(queries)  # one match each
    for anchor, negative in zip(rows.columns["anchor"], rows.columns["negative_1"]):
        assert anchor != negative
    none = TextFitArgs(model=minilm, out=tmp_path, hard_negatives=0)
    assert mine_train(queries, products, start, none) == []


def test_the_in_batch_run_trains_on_the_mined_column(catalogue, minilm, tmp_path, monkeypatch):
    """``hard_negatives = 1`` reaches the trainer: the mnrl run's rows carry the mined
    column, and the run is scored on valid as without it."""
    import training.text_catalogue as fit

    queries, products = catalogue
    valid = {
        f"v{i}": Product(f"v{i}", title, group=f"vg{i // 2}", fields={"split": "valid"})
        for i, title in enumerate(
            ["iPhone 12 64GB", "Apple iPhone 12 64 GB", "Bosch drill", "18V drill Bosch"]
        )
    }
    seen: list[set[str]] = []
    real = fit.train_text_biencoder

    def spy(rows, *args, **kwargs):
        seen.append(set(rows.columns))
        return real(rows, *args, **kwargs)

    monkeypatch.setattr(fit, "train_text_biencoder", spy)
    args = TextFitArgs(
        model=minilm, out=tmp_path, loss="mnrl", hard_negatives=1,
        batch_size=2, eval_steps=1, max_steps=2, patience=1,
    )  # fmt: skip
    result = fit.fit_catalogue_text(queries, products, list(valid.values()), args)
    assert seen == [{"anchor", "positive", "negative_1"}]
    assert result.loss == "mnrl" and result.curves["mnrl"]["steps_run"] >= 1
