"""The synthetic Shopee-layout catalogue: deterministic, well-formed, hard, and breakable."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from retrieval.data.images import load_image
from retrieval.data.synth import COLUMNS, synthesize
from retrieval.data.synth_titles import format_capacity
from retrieval.errors import UsageError


def _rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "train.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _groups(folder: Path) -> list[dict]:
    lines = (folder / "synth_groups.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_same_seed_gives_the_same_bytes(tmp_path):
    a = synthesize(tmp_path / "a", groups=12, seed=7, image_size=40)
    b = synthesize(tmp_path / "b", groups=12, seed=7, image_size=40)
    files_a, files_b = _files(a), _files(b)
    assert len(files_a) > 12 * 2  # csv, sidecar and at least two images a group
    assert files_a == files_b


def test_another_seed_gives_another_catalogue(tmp_path):
    a = synthesize(tmp_path / "a", groups=12, seed=1, image_size=40)
    b = synthesize(tmp_path / "b", groups=12, seed=2, image_size=40)
    assert (a / "train.csv").read_bytes() != (b / "train.csv").read_bytes()


def test_csv_has_shopee_columns_and_unique_ids(synth_dir):
    with (synth_dir / "train.csv").open(encoding="utf-8") as handle:
        assert handle.readline().strip() == ",".join(COLUMNS)
    rows = _rows(synth_dir)
    ids = [r["posting_id"] for r in rows]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith("train_") for i in ids)
    assert len({r["image"] for r in rows}) == len(rows)
    assert all(len(r["image_phash"]) == 16 for r in rows)  # imagehash is installed
    assert all(r["title"].strip() for r in rows)


def test_groups_hold_two_to_six_listings(synth_dir):
    sizes = Counter(r["label_group"] for r in _rows(synth_dir))
    assert len(sizes) == 30
    assert set(sizes.values()) <= {2, 3, 4, 5, 6}
    assert len(set(sizes.values())) >= 3  # sizes vary


def test_images_decode_at_the_requested_size(synth_dir):
    rows = _rows(synth_dir)
    for row in rows[:10]:
        img = load_image(str(synth_dir / "train_images" / row["image"]))
        assert img.size == (48, 48)


def test_listing_titles_vary_within_a_group(synth_dir):
    titles: dict[str, set[str]] = {}
    for row in _rows(synth_dir):
        titles.setdefault(row["label_group"], set()).add(row["title"])
    varied = sum(1 for t in titles.values() if len(t) > 1)
    assert varied >= 0.8 * len(titles)


def test_demo_products_and_their_hard_negatives(synth_dir):
    groups = _groups(synth_dir)
    by_label = {g["label_group"]: g for g in groups}
    # The Makefile's demo queries look for these two products.
    assert groups[0]["title"] == "Samsung Galaxy A52 128GB Hitam"
    assert groups[1]["title"] == "Xiaomi Redmi Note 10 64GB Biru"
    # Same phone in 256GB: a sibling that differs only in capacity.
    assert groups[2]["title"] == "Samsung Galaxy A52 256GB Hitam"
    assert by_label[groups[2]["sibling_of"]]["title"] == groups[0]["title"]


def test_siblings_differ_in_model_or_capacity_only(synth_dir):
    groups = _groups(synth_dir)
    by_label = {g["label_group"]: g for g in groups}
    siblings = [g for g in groups if g["sibling_of"] is not None]
    assert len(siblings) >= 5
    for g in siblings:
        source = by_label[g["sibling_of"]]
        for key in ("category", "brand", "colour"):
            assert g[key] == source[key]
        assert (g["model"], g["capacity"]) != (source["model"], source["capacity"])


def test_listing_count_matches_the_sidecar(synth_dir):
    sizes = Counter(r["label_group"] for r in _rows(synth_dir))
    assert {str(g["label_group"]): g["listings"] for g in _groups(synth_dir)} == dict(sizes)


def test_capacity_formats():
    assert format_capacity(("128", "GB"), 0) == "128GB"
    assert format_capacity(("128", "GB"), 1) == "128 gb"
    assert format_capacity(("128", "GB"), 2) == "128 GB"
    assert format_capacity(("42", "EU"), 0) == "Size 42"
    assert format_capacity(("XL", "size"), 0) == "XL"


def test_corrupt_and_missing_images(tmp_path):
    out = synthesize(tmp_path / "broken", groups=8, seed=0, image_size=40, corrupt=2, missing=3)
    rows = _rows(out)
    paths = [out / "train_images" / r["image"] for r in rows]
    absent = [p for p in paths if not p.exists()]
    assert len(absent) == 3
    unreadable = 0
    for path in paths:
        if path.exists():
            try:
                load_image(str(path))
            except OSError:
                unreadable += 1
    assert unreadable == 2
    assert all(r["image"] for r in rows)  # the CSV still lists every image


def test_rerun_with_missing_removes_the_file(tmp_path):
    out = synthesize(tmp_path / "s", groups=4, seed=0, image_size=40)
    assert len(list((out / "train_images").iterdir())) == len(_rows(out))
    synthesize(out, groups=4, seed=0, image_size=40, missing=1)
    assert len(list((out / "train_images").iterdir())) == len(_rows(out)) - 1


@pytest.mark.parametrize(
    "kwargs", [{"groups": 0}, {"corrupt": 10_000}, {"missing": -1}, {"image_size": 8}]
)
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises(UsageError):
        synthesize(tmp_path / "x", **{"groups": 3, "image_size": 40, **kwargs})


def test_image_is_a_jpeg(synth_dir):
    first = _rows(synth_dir)[0]["image"]
    with Image.open(synth_dir / "train_images" / first) as img:
        assert img.format == "JPEG"
