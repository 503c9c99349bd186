"""CLIP fine-tuning on a tiny random open_clip model and a synthetic Shopee-layout set."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import replace

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
open_clip = pytest.importorskip("open_clip")
torch = pytest.importorskip("torch")
pytest.importorskip("accelerate")

from retrieval.data.synth import synthesize  # noqa: E402
from retrieval.encoders import build_encoder  # noqa: E402
from retrieval.errors import UsageError  # noqa: E402
from search.train.clip import split_products  # noqa: E402
from training.clip import BiencoderArgs, fit_clip_biencoder  # noqa: E402
from training.loop import checkpoints  # noqa: E402
from training.resume import TrainingDivergedError  # noqa: E402

TINY = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models gain nothing from threads, and on a busy 2-core machine intra-op
    threads that wait on each other make these tests ten times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_arch(tmp_path_factory):
    """A tiny open_clip architecture registered from a config in a tmp dir."""
    name = f"tiny-train-clip-{uuid.uuid4().hex[:8]}"
    path = tmp_path_factory.mktemp("clipcfg") / f"{name}.json"
    path.write_text(json.dumps(TINY))
    open_clip.add_model_config(path)
    return name


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    folder = synthesize(tmp_path_factory.mktemp("synth"), groups=24, seed=1, image_size=32)
    # seed 1: 15 train groups (59 listings), 5 valid groups (23 listings)
    return split_products(str(folder), "train"), split_products(str(folder), "valid")


def _args(tiny_arch, out, **kw):
    base = dict(
        out=out,
        model=f"{tiny_arch},pretrained=none",
        batch_size=6,
        lr=2e-3,
        epochs=1,
        device="cpu",
        precision="fp32",
        progress=False,
        warmup_steps=2,
        weight_decay=0.0,
    )
    return BiencoderArgs(**{**base, **kw})


def test_loss_falls_and_checkpoint_reloads_as_clip_encoder(tiny_arch, splits, tmp_path):
    train, valid = splits
    args = _args(tiny_arch, tmp_path / "model", epochs=3, pairs=("image-text",), save_steps=5)
    result, folder = fit_clip_biencoder(train, valid, args)
    losses = result.losses
    assert len(losses) >= 12
    assert np.mean(losses[-4:]) < 0.8 * np.mean(losses[:4]), losses
    assert len(result.evals) == 3 and "stage1/image-image/recall@10" in result.evals[-1]
    assert len(checkpoints(folder)) == 2  # keep=2
    # the saved folder loads through the clip encoder and embeds as the trained model does
    encoder = build_encoder(f"clip:{folder},device=cpu,num_workers=0,precision=fp32")
    from training.clip import load_clip, recall_eval

    reloaded = load_clip(str(folder))
    ours = recall_eval(reloaded, valid, 10)
    # the reloaded model reaches the recall the trained one reached after its last epoch
    assert ours == pytest.approx({k: result.evals[-1][k] for k in ours})
    out = encoder.encode(valid[:4])
    model = reloaded.model.eval()
    with torch.no_grad():
        text = torch.nn.functional.normalize(
            model.encode_text(reloaded.tokenizer([valid[0].title]))
        )
    np.testing.assert_allclose(out.vectors["clip_text"][0], text[0].numpy(), atol=1e-5)


def test_resume_continues_with_the_same_batches(tiny_arch, splits, tmp_path):
    train, _ = splits
    args = _args(tiny_arch, tmp_path / "full", pairs=("image-text", "text-text"), max_steps=6)
    full, _ = fit_clip_biencoder(train, [], args)

    class Killed(Exception):
        pass

    import training.loop as loop

    real = loop.train_loop

    def killed_at_3(*a, **kw):
        def on_step(step, loss):
            if step == 3:
                raise Killed

        return real(*a, **kw, on_step=on_step)

    part = replace(args, out=tmp_path / "part", save_steps=3)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loop, "train_loop", killed_at_3)
        mp.setattr("training.loop.train_loop", killed_at_3)
        with pytest.raises(Killed):
            fit_clip_biencoder(train, [], part)
    assert [p.name for p in checkpoints(part.out)] == ["step-3"]
    resumed, _ = fit_clip_biencoder(train, [], replace(part, resume=True))
    assert resumed.state.step == 6
    np.testing.assert_allclose(resumed.losses, full.losses[3:], rtol=1e-4, atol=1e-5)


def test_nan_stops_with_the_step_and_keeps_the_last_good_checkpoint(tiny_arch, splits, tmp_path):
    train, _ = splits
    from training.losses import InfoNCELoss

    real = InfoNCELoss.forward
    calls = {"n": 0}

    def poisoned(self, *a, **kw):
        calls["n"] += 1
        value = real(self, *a, **kw)
        return value * float("nan") if calls["n"] == 5 else value

    args = _args(tiny_arch, tmp_path / "nan", pairs=("image-text",), save_steps=2)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(InfoNCELoss, "forward", poisoned)
        with pytest.raises(TrainingDivergedError, match="loss nan at step 5.*step-4"):
            fit_clip_biencoder(train, [], args)
    assert [p.name for p in checkpoints(args.out)] == ["step-2", "step-4"]
    assert not (args.out / "open_clip_model.safetensors").exists()


def test_too_few_groups_says_so_before_training(tiny_arch, splits, tmp_path):
    train, _ = splits
    with pytest.raises(UsageError, match="product groups for a batch size of 64"):
        fit_clip_biencoder(train, [], _args(tiny_arch, tmp_path / "x", batch_size=64))
    assert not (tmp_path / "x").exists()


def test_cli_trains_a_clip_biencoder(tiny_arch, tmp_path):
    from typer.testing import CliRunner

    from search.cli import app

    data = synthesize(tmp_path / "data", groups=12, seed=1, image_size=32)
    out = tmp_path / "cli-model"
    args = ["train", "biencoder", str(data), "--kind", "clip", "--out", str(out)]
    args += ["--model", f"{tiny_arch},pretrained=none", "--batch-size", "4", "--lr", "1e-3"]
    args += ["--pairs", "image-text", "--loss", "siglip", "--device", "cpu", "--precision", "fp32"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "loss:" in result.output and (out / "open_clip_config.json").is_file()
    # the trained folder is an encoder spec: index with it and query by image
    spec = f"clip:{out},device=cpu,num_workers=0"
    res = CliRunner().invoke(app, ["index", str(data), "-e", spec, "--collection", "ft"])
    assert res.exit_code == 0, res.output
    first = sorted((data / "train_images").iterdir())[0]
    res = CliRunner().invoke(
        app,
        ["query", "", "--image", str(first), "-c", "ft", "--vector", "image", "--json", "-k", "1"],
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["hits"][0]["image_path"].endswith(first.name)
    bad = CliRunner().invoke(app, [*args[:-6], "--pairs", "image-sound"])
    assert bad.exit_code == 2 and "unknown pair kind 'image-sound'" in bad.output


def test_hard_negatives_and_accumulation(tiny_arch, splits, tmp_path):
    train, _ = splits
    from training.clip_data import PairDataset, build_pairs, make_collate, read_negatives

    # each listing's mined negatives: two listings of other groups (FlagEmbedding layout)
    others = [[q for q in train if q.group != p.group][:2] for p in train]
    path = tmp_path / "negatives.jsonl"
    rows = [
        {
            "query": p.title,
            "pos": [],
            "neg": [n.title for n in negs],
            "query_id": p.id,
            "pos_ids": [],
            "neg_ids": [n.id for n in negs],
        }
        for p, negs in zip(train, others)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    negatives = read_negatives(path, train)
    assert len(negatives) == len(train)
    pairs = build_pairs(train, ["text-text"])
    data = PairDataset(train, pairs, lambda img: img, negatives)
    batch = make_collate(lambda texts: torch.zeros(len(texts), 4), lambda pos: 99)(
        [data[0], data[1]]
    )
    assert batch["extra"].shape == (2, 4) and batch["extra_groups"].tolist() == [99, 99]
    args = _args(tiny_arch, tmp_path / "neg", pairs=("image-text",), negatives=path)
    result, _ = fit_clip_biencoder(train, [], replace(args, accumulate=2, max_steps=2))
    assert result.state.step == 2 and all(np.isfinite(result.losses))
