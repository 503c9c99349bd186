"""Issue 10, item 3: ``--resume`` never unpickles a file planted in the output folder.

A planted pickle here would create a marker file when unpickled (what an attacker's
``custom_checkpoint_0.pkl`` would do with any code). Resuming either ignores the planted
file (a name the run does not read) or stops with one line (a file it reads, replaced);
the marker never appears.
"""

from __future__ import annotations

import pickle

import pytest

from retrieval.errors import SearchError

torch = pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytest.importorskip("safetensors")

from training.loop import LoopArgs, checkpoints, train_loop  # noqa: E402
from training.sampler import GroupBatchSampler  # noqa: E402

# accelerate's save_state names: its load_state unpickled the custom ones with
# weights_only=False
ACCELERATE_NAMES = (
    "custom_checkpoint_0.pkl",
    "custom_checkpoint_1.pkl",
    "random_states_0.pkl",
    "pytorch_model.bin",
    "optimizer.bin",
    "scheduler.bin",
)


class Plant:
    """Unpickling this runs code: it creates ``marker``."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def plant(path, marker, *, torch_format: bool = True) -> None:
    """A file in torch's format (as accelerate writes them) or a bare pickle."""
    if torch_format:
        torch.save({"state": Plant(marker)}, path)
    else:
        path.write_bytes(pickle.dumps({"state": Plant(marker)}))


@pytest.mark.parametrize("torch_format", [True, False])
def test_the_plant_really_runs_code_when_unpickled(tmp_path, torch_format):
    marker = tmp_path / "pwned"
    plant(tmp_path / "x.pkl", marker, torch_format=torch_format)
    if torch_format:  # as accelerate's load_custom_state reads custom_checkpoint_N.pkl
        torch.load(tmp_path / "x.pkl", weights_only=False)
    else:
        pickle.loads((tmp_path / "x.pkl").read_bytes())
    assert marker.exists()  # so its absence below means nothing unpickled it


class Tiny(torch.nn.Module):
    """A linear regressor whose forward returns the loss, as ``train_loop`` wants."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(4, 1)

    def forward(self, batch):
        x, y = batch
        return ((self.lin(x).squeeze(-1) - y) ** 2).mean()


class Killed(Exception):
    """Stands for a SIGKILL right after a checkpoint."""


def _train(out, *, resume=False, stop_at=None):
    gen = torch.Generator().manual_seed(1)
    xs = torch.randn(24, 4, generator=gen)
    data = [(x, x.sum()) for x in xs]
    sampler = GroupBatchSampler([i % 12 for i in range(24)], 4, seed=0)
    args = LoopArgs(
        out=out, batch_size=4, lr=0.05, save_steps=2, max_steps=4, resume=resume,
        device="cpu", precision="fp32", progress=False,
    )  # fmt: skip

    def on_step(step, loss):
        if step == stop_at:
            raise Killed

    def collate(rows):
        return torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])

    return train_loop(Tiny(), data, sampler, collate, args, on_step=on_step)


@pytest.fixture
def killed_run(tmp_path):
    """A run killed after its step-2 checkpoint, and the losses of an unbroken run."""
    full = _train(tmp_path / "full")
    with pytest.raises(Killed):
        _train(tmp_path / "run", stop_at=2)
    assert [p.name for p in checkpoints(tmp_path / "run")] == ["step-2"]
    return tmp_path / "run", full.losses


def test_planted_pickles_are_ignored_and_resume_is_exact(killed_run, tmp_path):
    out, full_losses = killed_run
    folder = checkpoints(out)[-1]
    assert not list(folder.glob("*.pkl"))  # the run itself writes no pickle
    marker = tmp_path / "pwned"
    for name in ACCELERATE_NAMES:
        plant(folder / name, marker)
    resumed = _train(out, resume=True)
    assert not marker.exists()
    assert resumed.state.step == 4
    # the model, optimiser, schedule and RNG came back from the safe files
    assert resumed.losses == pytest.approx(full_losses[2:], rel=1e-5)


@pytest.mark.parametrize("name", ["optimizer.pt", "scheduler.json", "rng-0.json"])
def test_a_replaced_state_file_fails_with_one_line(killed_run, tmp_path, name):
    out, _ = killed_run
    marker = tmp_path / "pwned"
    plant(checkpoints(out)[-1] / name, marker)
    with pytest.raises(SearchError) as err:
        _train(out, resume=True)
    message = str(err.value)
    assert "\n" not in message and name in message and "cannot resume" in message
    assert not marker.exists()


def test_trainer_checkpoints_refuse_a_planted_rng_pickle(tmp_path):
    """The Trainer-based trainers (cross-encoder here) resume through transformers'
    weights-only loader; a planted ``rng_state.pth`` is one line, never run."""
    pytest.importorskip("transformers")
    from helpers.tiny_bert import build_tiny_bert

    from training.cross_encoder import CrossEncoderConfig, train_cross_encoder

    model = build_tiny_bert(tmp_path / "bert")
    rows = [
        {"query": f"samsung galaxy {i}", "pos": [f"samsung galaxy {i} original"], "neg": ["usb"]}
        for i in range(8)
    ]
    config = CrossEncoderConfig(epochs=1, batch_size=4, group_size=2, save_steps=1, max_length=16)
    out = tmp_path / "ce"
    train_cross_encoder(rows, str(model), out, config)
    last = sorted((out / "checkpoints").glob("checkpoint-*"))[-1]
    marker = tmp_path / "pwned"
    plant(last / "rng_state.pth", marker)
    plant(last / "custom_checkpoint_0.pkl", marker, torch_format=False)
    # the completion marker rewritten too (else the folder is skipped as unfinished):
    # the loader itself must refuse the pickle
    from training.callbacks import mark_complete

    mark_complete(last)
    more = CrossEncoderConfig(**{**vars(config), "epochs": 2})
    with pytest.raises(SearchError) as err:
        train_cross_encoder(rows, str(model), out, more, resume=True)
    assert "\n" not in str(err.value) and "cannot resume" in str(err.value)
    assert not marker.exists()
