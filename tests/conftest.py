"""Shared fixtures: no network, a private SEARCH_HOME per test."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _search_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SEARCH_HOME", str(tmp_path / "search-home"))
    monkeypatch.delenv("QDRANT_URL", raising=False)
    monkeypatch.delenv("QDRANT_API_KEY", raising=False)
