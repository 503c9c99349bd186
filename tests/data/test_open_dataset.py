"""Format detection and the errors of ``open_dataset``."""

from __future__ import annotations

import json
import zipfile

import pytest

from retrieval.data import (
    CatalogDataset,
    QueryGalleryDataset,
    ShopeeDataset,
    detect_format,
    open_dataset,
)
from retrieval.errors import UsageError

SHOPEE = ("posting_id", "image", "image_phash", "title", "label_group")


@pytest.fixture
def shopee_dir(tmp_path, write_csv):
    folder = tmp_path / "shop"
    write_csv(folder / "train.csv", SHOPEE, [("a1", "a1.jpg", "", "Kaos", "1")])
    (folder / "train_images").mkdir()
    return folder


def test_folder_with_train_csv_is_shopee(shopee_dir):
    data = open_dataset(shopee_dir)
    assert isinstance(data, ShopeeDataset) and data.name == "shop"


def test_folder_with_only_test_csv_is_shopee(tmp_path, write_csv):
    write_csv(tmp_path / "t" / "test.csv", SHOPEE[:4], [("t1", "t1.jpg", "", "x")])
    assert detect_format(tmp_path / "t") == "shopee"


def test_zip_is_shopee(shopee_dir, tmp_path):
    archive = tmp_path / "shopee-product-matching.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(shopee_dir / "train.csv", "train.csv")
    data = open_dataset(str(archive))
    assert isinstance(data, ShopeeDataset) and data.name == "shopee-product-matching"
    assert [p.id for p in data.products()] == ["a1"]


def test_a_csv_file_inside_a_zip_is_named_with_two_colons(shopee_dir, tmp_path, write_csv):
    write_csv(shopee_dir / "test.csv", SHOPEE[:4], [("t1", "t1.jpg", "", "x")])
    archive = tmp_path / "kaggle.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ("train.csv", "test.csv"):
            zf.write(shopee_dir / name, f"kaggle/{name}")
    assert detect_format(f"{archive}::test.csv") == "shopee"
    data = open_dataset(f"{archive}::test.csv")
    assert data.csv_files == ["test.csv"] and [p.id for p in data.products()] == ["t1"]
    assert [p.id for p in open_dataset(archive).products()] == ["a1"]  # the zip: train.csv
    with pytest.raises(UsageError, match="no other.csv"):
        open_dataset(f"{archive}::other.csv")
    with pytest.raises(UsageError, match="read as shopee"):
        open_dataset(f"{archive}::test.csv", format="catalog")
    with pytest.raises(UsageError, match="dataset not found"):
        open_dataset(f"{tmp_path / 'missing.zip'}::test.csv")


def test_zip_without_csv_is_undetectable(tmp_path):
    archive = tmp_path / "other.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(UsageError, match="--format"):
        open_dataset(archive)


def test_shopee_csv_file_opens_its_folder(shopee_dir):
    data = open_dataset(shopee_dir / "train.csv")
    assert isinstance(data, ShopeeDataset) and data.csv_files == ["train.csv"]
    assert data.name == "shop"


def test_query_gallery_folder(tmp_path):
    folder = tmp_path / "abt"
    folder.mkdir()
    (folder / "gallery.jsonl").write_text(json.dumps({"id": "g1", "title": "x"}) + "\n")
    (folder / "queries.jsonl").write_text(json.dumps({"id": "q1", "matches": ["g1"]}) + "\n")
    data = open_dataset(folder)
    assert isinstance(data, QueryGalleryDataset) and data.name == "abt"


@pytest.mark.parametrize("name", ["items.jsonl", "items.json", "items.csv"])
def test_catalog_files(tmp_path, name):
    path = tmp_path / name
    path.write_text("id,title\n1,x\n" if name.endswith(".csv") else '{"id": "1"}\n')
    data = open_dataset(path)
    assert isinstance(data, CatalogDataset) and data.name == "items"


def test_format_forces_the_reader(shopee_dir, tmp_path):
    assert isinstance(open_dataset(shopee_dir, format="shopee"), ShopeeDataset)
    # a Shopee CSV read as a plain catalogue: posting_id is not an id column
    with pytest.raises(UsageError, match="missing column 'id'"):
        list(open_dataset(shopee_dir / "train.csv", format="catalog").products())


def test_kwargs_reach_the_reader(shopee_dir):
    assert open_dataset(shopee_dir, seed=4).seed == 4
    with pytest.raises(UsageError, match="bad option for the shopee reader"):
        open_dataset(shopee_dir, colour="red")


def test_unknown_format_lists_known_ones(shopee_dir):
    with pytest.raises(UsageError, match="known: catalog, query-gallery, shopee") as info:
        open_dataset(shopee_dir, format="kaggle")
    assert info.value.exit_code == 2


def test_missing_path(tmp_path):
    with pytest.raises(UsageError, match="dataset not found: .*nowhere"):
        open_dataset(tmp_path / "nowhere")


def test_undetectable_folder_and_file(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="pass --format"):
        open_dataset(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UsageError, match="pass --format"):
        open_dataset(tmp_path / "notes.txt")
