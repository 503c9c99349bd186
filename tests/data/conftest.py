"""Shared data fixtures: one small synthetic catalogue per session, and a CSV writer."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from retrieval.data.synth import synthesize

SHOPEE_COLUMNS = ("posting_id", "image", "image_phash", "title", "label_group")


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """A 30-group synthetic Shopee folder with small images (read-only for tests)."""
    return synthesize(tmp_path_factory.mktemp("synth") / "synth", groups=30, seed=3, image_size=48)


@pytest.fixture
def write_csv():
    """Write rows (tuples) under a header to a CSV file; returns the path."""

    def write(path: Path, header: tuple[str, ...], rows: list[tuple[object, ...]]) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)
        return path

    return write
