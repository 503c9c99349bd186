"""ArcFace: the margin head's arithmetic, group-balanced batches, and short real runs of
the timm and text trainers (tiny random timm model, the packaged MiniLM) that save,
resume and load back as encoders."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("accelerate")

from retrieval.errors import UsageError  # noqa: E402
from training.arcface import ArcMarginHead  # noqa: E402
from training.balanced_sampler import BalancedGroupSampler  # noqa: E402


def test_margin_is_added_to_the_true_angle_only():
    torch.manual_seed(0)
    head = ArcMarginHead(8, 5, margin=0.3, scale=10.0)
    emb, labels = torch.randn(4, 8), torch.tensor([0, 1, 2, 3])
    cos = head.cosine(emb)
    logits = head.logits(emb, labels)
    rows = torch.arange(4)
    theta = torch.acos(cos[rows, labels])
    expected = torch.where(
        theta + 0.3 < math.pi, torch.cos(theta + 0.3), cos[rows, labels] - math.sin(0.3) * 0.3
    )
    torch.testing.assert_close(logits[rows, labels], 10.0 * expected, atol=1e-5, rtol=1e-5)
    off = torch.ones_like(logits, dtype=torch.bool)
    off[rows, labels] = False
    torch.testing.assert_close(logits[off], 10.0 * cos[off])
    head.margin = 0.0  # the warm-up's start: plain normalised softmax
    torch.testing.assert_close(
        head(emb, labels), torch.nn.functional.cross_entropy(10.0 * cos, labels)
    )


def test_subcenters_take_the_nearest_centre_of_each_group():
    head = ArcMarginHead(2, 2, subcenters=2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]))
    cos = head.cosine(torch.tensor([[0.0, 1.0]])).detach()
    assert cos[0, 0] == pytest.approx(1.0, abs=1e-6)  # group 0's second centre
    assert cos[0, 1] == pytest.approx(0.0, abs=1e-6)


def test_balanced_batches_hold_per_group_items_of_each_group_and_replay():
    groups = ["a"] * 7 + ["b"] * 2 + ["c"] * 5 + ["d"] * 4
    sampler = BalancedGroupSampler(groups, 8, per_group=2, seed=3)
    batches = sampler.batches(0)
    assert all(len(b) == 8 for b in batches)
    for batch in batches:
        counts: dict[str, int] = {}
        for i in batch:
            counts[groups[i]] = counts.get(groups[i], 0) + 1
        assert all(n % 2 == 0 for n in counts.values())
    assert {groups[i] for b in batches for i in b} == {"a", "b", "c", "d"}
    assert sampler.batches(0) == BalancedGroupSampler(groups, 8, per_group=2, seed=3).batches(0)
    assert sampler.batches(1) != batches
    sampler.set_position(0, 1)
    assert list(sampler) == batches[1:]
    with pytest.raises(UsageError):
        BalancedGroupSampler(["a"] * 4, 8, per_group=2)


def _splits(synth_set):
    from retrieval.data import open_dataset

    products = list(open_dataset(synth_set).products())
    train = [p for p in products if p.fields.get("split") == "train"]
    valid = [p for p in products if p.fields.get("split") == "valid"]
    return train, valid


def test_timm_arcface_trains_resumes_and_loads_as_an_encoder(synth_set, tmp_path):
    from retrieval.encoders import build_encoder
    from training.timm import TimmArcFaceArgs, fit_timm_arcface

    train, valid = _splits(synth_set)
    out = tmp_path / "timm-arcface"
    common = dict(
        out=out,
        model="test_efficientnet,pretrained=none",
        image_size=32,
        neck=16,
        batch_size=8,
        per_group=2,
        lr=1e-3,
        margin_warmup=3,
        freeze=0.5,
        progress=False,
    )
    result, best, folder = fit_timm_arcface(train, valid, TimmArcFaceArgs(epochs=1, **common))
    assert all(np.isfinite(result.losses)) and result.state.epoch == 1
    assert set(result.evals[0]) >= {"epoch", "precision@1", "mrr@10", "recall@10"}
    assert best["epoch"] == 1
    # the frozen stem kept its weights, BatchNorm statistics included
    steps = result.state.step
    again, best2, _ = fit_timm_arcface(
        train, valid, TimmArcFaceArgs(epochs=2, resume=True, **common)
    )
    assert again.state.step > steps and again.state.epoch == 2
    assert json.loads((out / "best_epoch.json").read_text())["evaluated"] == 2
    enc = build_encoder(f"timm:{folder},num_workers=0")
    assert enc.vectors()[0].size == 16
    vec = enc.encode(valid[:1]).vectors["image"][0]
    assert vec.shape == (16,) and np.linalg.norm(vec) == pytest.approx(1.0, abs=1e-5)
    ckpt = sorted((out / "checkpoints").glob("step-*"))[-1] / "model"
    assert build_encoder(f"timm:{ckpt},num_workers=0").vectors()[0].size == 16


def test_frozen_backbone_part_does_not_move(synth_set, tmp_path):
    from retrieval.encoders.timm_model import load_embedder
    from training.timm import TimmArcFaceArgs, fit_timm_arcface

    train, _ = _splits(synth_set)
    args = TimmArcFaceArgs(
        out=tmp_path / "frozen",
        model="test_efficientnet,pretrained=none",
        image_size=32,
        neck=None,
        batch_size=8,
        per_group=2,
        lr=1e-2,
        max_steps=2,
        freeze=0.5,
        seed=5,
        progress=False,
    )
    torch.manual_seed(5)
    fit_timm_arcface(train, [], args)
    trained = load_embedder(tmp_path / "frozen")
    torch.manual_seed(5)
    from training.timm import start_embedder

    start = start_embedder(args)
    a, b = start.backbone.state_dict(), trained.backbone.state_dict()
    torch.testing.assert_close(a["conv_stem.weight"], b["conv_stem.weight"])
    torch.testing.assert_close(a["bn1.running_mean"], b["bn1.running_mean"])
    assert not torch.equal(a["conv_head.weight"], b["conv_head.weight"])


def _text_args(out, tiny_bert, **over):
    """A text ArcFace run of the tiny BERT: 2 titles a group, 32 tokens, no progress bar."""
    from training.arcface_text import TextArcFaceArgs

    return TextArcFaceArgs(
        out=out, model=str(tiny_bert), per_group=2, max_length=32, progress=False, **over
    )


def test_text_arcface_trains_and_loads_as_text_encoder(synth_set, tiny_bert, tmp_path):
    pytest.importorskip("sentence_transformers")
    from retrieval.encoders import build_encoder
    from training.arcface_text import fit_text_arcface

    train, valid = _splits(synth_set)
    args = _text_args(
        tmp_path / "text-arcface", tiny_bert, epochs=1, batch_size=16, lr=5e-5, margin_warmup=2
    )
    result, best, folder = fit_text_arcface(train, valid, args)
    assert all(np.isfinite(result.losses))
    assert (folder / "modules.json").is_file()
    enc = build_encoder(f"text:{folder}")
    assert best["epoch"] == 1 and "precision@1" in best["metrics"]
    assert enc.encode(valid[:1]).vectors["text"][0].shape == (32,)


def test_scored_every_eval_steps_on_a_chosen_metric_and_stopped_by_patience(
    synth_set, tiny_bert, tmp_path
):
    pytest.importorskip("sentence_transformers")
    from training.arcface_text import fit_text_arcface

    train, _ = _splits(synth_set)
    f1s = iter([0.5, 0.7, 0.6, 0.65, 0.9])  # best at the 2nd evaluation, then 2 without gain
    seen = []

    def score(model):
        seen.append(type(model).__name__)
        return {"valid_match_f1": next(f1s)}

    args = _text_args(
        tmp_path / "stepped",
        tiny_bert,
        epochs=50,
        max_steps=40,
        batch_size=8,
        eval_steps=2,
        save_steps=2,
        patience=2,
        select="valid_match_f1",
    )
    steps = []
    result, best, folder = fit_text_arcface(train, [], args, score=score, on_step=steps.append)
    assert seen == ["SentenceTransformer"] * 4  # the 5th evaluation never came
    assert result.stopped and result.state.step == 8 and steps == list(range(1, 9))
    assert [e["step"] for e in result.evals] == [2.0, 4.0, 6.0, 8.0]
    assert best["step"] == 4 and best["metrics"] == {"valid_match_f1": 0.7}
    assert (folder / "modules.json").is_file()  # the best step's model


def test_bad_arcface_arguments_are_usage_errors(synth_set, tmp_path):
    from training.timm import TimmArcFaceArgs, fit_timm_arcface

    train, _ = _splits(synth_set)
    with pytest.raises(UsageError, match="--margin"):
        fit_timm_arcface(
            train,
            [],
            TimmArcFaceArgs(out=tmp_path, margin=2.0, model="test_efficientnet,pretrained=none"),
        )
    with pytest.raises(UsageError, match="at least two groups"):
        fit_timm_arcface(
            train[:1], [], TimmArcFaceArgs(out=tmp_path, model="test_efficientnet,pretrained=none")
        )
