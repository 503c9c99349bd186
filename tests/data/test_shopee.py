"""The Shopee reader: folders, competition zips, group splits and self-excluding queries."""

from __future__ import annotations

import csv
import zipfile
from collections import defaultdict
from pathlib import Path

import pytest

from retrieval.data.base import SPLITS, split_of_group
from retrieval.data.images import load_image, zip_ref
from retrieval.data.shopee import ShopeeDataset
from retrieval.errors import UsageError

COLUMNS = ("posting_id", "image", "image_phash", "title", "label_group")


def _zip(folder: Path, archive: Path, top: str = "") -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, top + str(path.relative_to(folder)))
    return archive


def _csv_rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "train.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_reads_a_synth_folder(synth_dir):
    data = ShopeeDataset(synth_dir)
    products = list(data.products())
    rows = _csv_rows(synth_dir)
    assert [p.id for p in products] == [r["posting_id"] for r in rows]
    first, row = products[0], rows[0]
    assert first.title == row["title"]
    assert first.group == row["label_group"]
    assert first.image_path == str(synth_dir / "train_images" / row["image"])
    assert first.fields["image_phash"] == row["image_phash"]
    assert first.fields["source"] == "train"
    assert first.fields["split"] == split_of_group(row["label_group"], 0)
    assert data.name == "synth" and data.format == "shopee" and data.self_match


def test_reads_the_competition_zip_in_place(synth_dir, tmp_path):
    archive = _zip(synth_dir, tmp_path / "shopee-product-matching.zip")
    from_zip = list(ShopeeDataset(archive).products())
    from_dir = list(ShopeeDataset(synth_dir).products())
    assert [(p.id, p.title, p.group, p.fields) for p in from_zip] == [
        (p.id, p.title, p.group, p.fields) for p in from_dir
    ]
    name = Path(from_dir[0].image_path).name
    assert from_zip[0].image_path == zip_ref(archive, f"train_images/{name}")
    assert load_image(from_zip[0].image_path).size == (48, 48)
    assert ShopeeDataset(archive).name == "shopee-product-matching"


def test_zip_with_one_top_level_folder(synth_dir, tmp_path):
    archive = _zip(synth_dir, tmp_path / "nested.zip", top="shopee/")
    products = list(ShopeeDataset(archive).products())
    assert len(products) == len(_csv_rows(synth_dir))
    assert "::shopee/train_images/" in products[0].image_path
    assert load_image(products[0].image_path).mode == "RGB"


def test_every_group_lands_in_exactly_one_split(synth_dir):
    splits_of: dict[str, set[str]] = defaultdict(set)
    for p in ShopeeDataset(synth_dir).products():
        splits_of[p.group].add(p.fields["split"])
    assert all(len(s) == 1 for s in splits_of.values())
    assert set().union(*splits_of.values()) <= set(SPLITS)


def test_splits_are_deterministic_and_follow_the_seed(synth_dir):
    def splits(seed: int) -> dict[str, str]:
        return {p.id: p.fields["split"] for p in ShopeeDataset(synth_dir, seed=seed).products()}

    assert splits(0) == splits(0)
    assert splits(0) != splits(1)


def test_queries_exclude_self_and_stay_in_their_split(synth_dir):
    data = ShopeeDataset(synth_dir)
    products = {p.id: p for p in data.products()}
    total = 0
    for split in SPLITS:
        for q in data.queries(split):
            assert q.split == split and q.id not in q.matches
            mates = {p.id for p in products.values() if p.group == q.product.group} - {q.id}
            assert set(q.matches) == mates
            total += 1
    assert total == len(products) == len(data.queries())
    assert data.search_filter("valid") == {"split": "valid"}


def test_hand_written_train_and_test_csv(tmp_path, write_csv):
    write_csv(
        tmp_path / "train.csv",
        COLUMNS,
        [
            ("a1", "a1.jpg", "ff00", "Kaos Polos Hitam", "100"),
            ("a2", "a2.jpg", "ff01", r"kaos polos hitam \xe2\x80\x99 murah", "100"),
            ("b1", "", "", "Botol 1L", "200"),
        ],
    )
    write_csv(tmp_path / "test.csv", COLUMNS[:4], [("t1", "t1.jpg", "aa", "Tas Ransel")])
    data = ShopeeDataset(tmp_path, csv="all")
    products = {p.id: p for p in data.products()}
    assert products["a2"].title == r"kaos polos hitam \xe2\x80\x99 murah"  # left as it is
    assert products["b1"].image_path is None  # empty image cell
    assert products["a1"].image_path == str(tmp_path / "train_images" / "a1.jpg")  # not checked
    t1 = products["t1"]
    assert t1.group is None and t1.fields == {
        "split": "unlabelled",
        "image_phash": "aa",
        "source": "test",
    }
    assert t1.image_path == str(tmp_path / "test_images" / "t1.jpg")
    queries = {q.id: q.matches for q in data.queries()}
    assert queries == {"a1": ("a2",), "a2": ("a1",), "b1": ()}  # t1 is never a query


def test_default_reads_train_then_falls_back_to_test(tmp_path, write_csv):
    write_csv(tmp_path / "test.csv", COLUMNS[:4], [("t1", "t1.jpg", "", "x")])
    assert [p.id for p in ShopeeDataset(tmp_path).products()] == ["t1"]
    write_csv(tmp_path / "train.csv", COLUMNS, [("a1", "a1.jpg", "", "y", "1")])
    assert [p.id for p in ShopeeDataset(tmp_path).products()] == ["a1"]


def test_missing_column_names_column_and_file(tmp_path, write_csv):
    write_csv(tmp_path / "train.csv", COLUMNS[:4], [("a1", "a1.jpg", "", "x")])
    with pytest.raises(UsageError, match=r"train\.csv.*label_group"):
        list(ShopeeDataset(tmp_path).products())


def test_missing_csv_is_a_usage_error(tmp_path, write_csv):
    with pytest.raises(UsageError, match="no train.csv or test.csv"):
        ShopeeDataset(tmp_path)
    write_csv(tmp_path / "train.csv", COLUMNS, [])
    with pytest.raises(UsageError, match="no test.csv"):
        ShopeeDataset(tmp_path, csv="test.csv")


def test_products_are_read_once(tmp_path, write_csv):
    write_csv(tmp_path / "train.csv", COLUMNS, [("a1", "a1.jpg", "", "x", "1")])
    data = ShopeeDataset(tmp_path)
    first = list(data.products())
    (tmp_path / "train.csv").unlink()
    assert list(data.products()) == first


def test_repeated_posting_id_is_skipped(tmp_path, write_csv, caplog):
    rows = [("a1", "a.jpg", "", "x", "1"), ("a1", "b.jpg", "", "y", "1")]
    write_csv(tmp_path / "train.csv", COLUMNS, rows)
    products = list(ShopeeDataset(tmp_path).products())
    assert [p.title for p in products] == ["x"]
    assert "repeated posting_id" in caplog.text
