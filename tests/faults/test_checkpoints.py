"""Checkpoints written whole (issue 23, case 3).

The Trainer writes a checkpoint's files in place, one after another; a kill left a
folder with the weights, an empty optimizer file and no trainer state, and ``--resume``
picked it (the highest step) and stopped with a ``FileNotFoundError`` traceback; a
half-written ``optimizer.pt``, ``model.safetensors`` or ``trainer_state.json`` was a
traceback too. Now a folder is complete only when ``checkpoint-complete.json`` (written
through the atomic writer after the Trainer's last file) is there and every file has
its recorded size; resume takes the newest complete one and logs the one it skipped.
"""

from __future__ import annotations

import shutil

import pytest

pytest.importorskip("transformers")

from helpers.tiny_bert import build_tiny_bert  # noqa: E402

from retrieval.errors import UsageError  # noqa: E402
from training.callbacks import COMPLETE  # noqa: E402
from training.cross_encoder import train_cross_encoder  # noqa: E402
from training.reranker_config import CrossEncoderConfig  # noqa: E402

ROWS = [
    {
        "query": f"samsung galaxy {i}",
        "pos": [f"samsung galaxy {i} original"],
        "neg": [f"xiaomi redmi {i} murah", f"nike air zoom {i}", "apple iphone case"],
    }
    for i in range(16)
]


def config(epochs: int) -> CrossEncoderConfig:
    """4 steps an epoch, a checkpoint every 2."""
    return CrossEncoderConfig(
        epochs=epochs, batch_size=4, group_size=4, max_length=32, save_steps=2, patience=0
    )


def cut(path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def killed(folder) -> None:
    """What a kill during the Trainer's save leaves: weights, an empty optimizer file,
    no trainer state, no marker."""
    (folder / "optimizer.pt").write_bytes(b"")
    for name in ("trainer_state.json", "scheduler.pt", "rng_state.pth", COMPLETE):
        (folder / name).unlink(missing_ok=True)


DAMAGES = {
    "killed-mid-save": killed,
    "half-optimizer": lambda f: cut(f / "optimizer.pt"),
    "half-weights": lambda f: cut(f / "model.safetensors"),
    "half-trainer-state": lambda f: cut(f / "trainer_state.json"),
}


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory):
    """A one-epoch run: checkpoint-2 and checkpoint-4 under out/checkpoints."""
    root = tmp_path_factory.mktemp("ckpt")
    encoder = build_tiny_bert(root / "encoder")
    out = root / "run"
    assert train_cross_encoder(ROWS, str(encoder), out, config(1))["global_step"] == 4
    for step in (2, 4):
        assert (out / "checkpoints" / f"checkpoint-{step}" / COMPLETE).is_file()
    return encoder, out


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_resume_falls_back_to_the_newest_complete_checkpoint(one_epoch, tmp_path, damage, caplog):
    encoder, done = one_epoch
    out = tmp_path / "run"
    shutil.copytree(done, out)
    DAMAGES[damage](out / "checkpoints" / "checkpoint-4")
    with caplog.at_level("INFO"):
        more = train_cross_encoder(ROWS, str(encoder), out, config(2), resume=True)
    assert more["global_step"] == 8
    assert "skipping checkpoint" in caplog.text and "checkpoint-4" in caplog.text
    assert f"resuming from {out / 'checkpoints' / 'checkpoint-2'}" in caplog.text
    assert (out / "checkpoints" / "checkpoint-8" / COMPLETE).is_file()


def test_only_unfinished_checkpoints_resume_in_one_line_and_a_fresh_run_starts(one_epoch, tmp_path):
    encoder, done = one_epoch
    out = tmp_path / "run"
    shutil.copytree(done, out)
    for step in (2, 4):
        killed(out / "checkpoints" / f"checkpoint-{step}")
    with pytest.raises(
        UsageError, match=r"no complete checkpoint .*\(checkpoint-2, checkpoint-4 unfinished\)"
    ):
        train_cross_encoder(ROWS, str(encoder), out, config(1), resume=True)
    # a fresh run is not told to pass --resume: the unfinished folders go, it starts over
    assert train_cross_encoder(ROWS, str(encoder), out, config(1))["global_step"] == 4
