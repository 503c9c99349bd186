"""LoRA fine-tuning of the qwen-vl reranker on a tiny random Qwen2-VL: the loss falls, the
merged checkpoint reloads by path and scores as the trained model did, ``resume`` goes on
from the saved step with the same data, a NaN loss stops the run, and the CLI trains on a
synthetic catalogue with stage-1 negatives."""

from __future__ import annotations

import shutil

import pytest
from helpers.tiny_qwen import build_tiny_qwen_vl
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("qwen_vl_utils")

from rerank.base import build_reranker  # noqa: E402
from rerank.qwen_vl import QwenVLReranker  # noqa: E402
from retrieval.types import Candidate, Product, Query  # noqa: E402
from training.qwen_vl import (  # noqa: E402
    QwenVLTrainingArguments,
    pair_examples,
    train_qwen_vl,
)
from training.resume import TrainingDivergedError  # noqa: E402

PIXELS = {"min_pixels": 4 * 28 * 28, "max_pixels": 16 * 28 * 28}
KINDS = [("phone", (220, 20, 20)), ("shoe", (20, 20, 220)), ("kettle", (20, 200, 20))]
WORDS = ["phone", "shoe", "kettle", "black", "white", "listing", "same", "product", "answer"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """The tiny Qwen2-VL with a sharper head: at init scale its answer logits barely move."""
    from transformers import Qwen2VLForConditionalGeneration

    path = build_tiny_qwen_vl(tmp_path_factory.mktemp("qwen-base"), WORDS)
    model = Qwen2VLForConditionalGeneration.from_pretrained(path)
    with torch.no_grad():
        model.lm_head.weight.mul_(50.0)
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    """Three kinds x two colours of title, two listings each; a group is (kind, colour)."""
    root = tmp_path_factory.mktemp("products")
    products = {}
    for kind, rgb in KINDS:
        for colour in ("black", "white"):
            for j in range(2):
                pid = f"{kind}-{colour}-{j}"
                path = root / f"{pid}.png"
                Image.new("RGB", (32 + 8 * j, 32), rgb).save(path)
                products[pid] = Product(pid, f"{kind} {colour}", str(path), f"{kind}-{colour}")
    queries = [Query(p, (f"{p.group}-{1 - int(p.id[-1])}",)) for p in products.values()]
    negatives = {
        q.id: [i for i, p in products.items() if p.group != q.product.group] for q in queries
    }
    return queries, products, negatives


def args(tmp_path, **kw):
    base = dict(
        output_dir=str(tmp_path / "ckpt"),
        max_steps=8,
        save_steps=4,
        per_device_train_batch_size=4,
        learning_rate=2e-2,
        warmup_steps=0.0,
        lora_r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    return QwenVLTrainingArguments(**{**base, **kw})


def reranker(path):
    return QwenVLReranker(str(path), device="cpu", **PIXELS)


def test_loss_falls_and_merged_model_reloads(base, catalogue, tmp_path):
    queries, products, negatives = catalogue
    examples = pair_examples(queries, products, negatives, ratio=1, seed=0)
    assert len(examples) == 24 and sum(label for *_, label in examples) == 12
    rr = reranker(base)
    info = train_qwen_vl(rr, examples, args(tmp_path, max_steps=30, save_steps=100), tmp_path / "m")
    losses = info["losses"]
    assert info["steps"] == 30 and len(losses) == 30
    assert sum(losses[-6:]) / 6 < 0.8 * sum(losses[:6]) / 6
    assert (tmp_path / "m" / "adapter" / "adapter_config.json").exists()
    assert not list((tmp_path / "m").glob("adapter_model*"))  # merged: no peft needed

    pairs = [(q, Candidate(c, 0.5, 1)) for q, c, _ in examples[:8]]
    trained = rr.score(pairs)
    spec = f"qwen-vl:{tmp_path / 'm'},device=cpu,min_pixels={PIXELS['min_pixels']}"
    loaded = build_reranker(f"{spec},max_pixels={PIXELS['max_pixels']}")
    assert loaded.score(pairs) == pytest.approx(trained, abs=1e-5)


def test_resume_continues_from_the_saved_step(base, catalogue, tmp_path):
    queries, products, negatives = catalogue
    examples = pair_examples(queries, products, negatives, ratio=1, seed=0)
    full = train_qwen_vl(reranker(base), examples, args(tmp_path), tmp_path / "a")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "checkpoint-4",
        "checkpoint-8",
    ]
    shutil.rmtree(tmp_path / "ckpt" / "checkpoint-8")  # as if killed after step 4
    resumed = train_qwen_vl(reranker(base), examples, args(tmp_path), tmp_path / "b", resume=True)
    assert resumed["start_step"] == 4 and resumed["steps"] == 8
    assert resumed["losses"] == pytest.approx(full["losses"][4:], abs=1e-4)


def test_resume_without_checkpoint_is_a_usage_error(base, catalogue, tmp_path):
    from retrieval.errors import UsageError

    queries, products, negatives = catalogue
    examples = pair_examples(queries, products, negatives)
    with pytest.raises(UsageError, match="no checkpoint"):
        train_qwen_vl(reranker(base), examples, args(tmp_path), tmp_path / "m", resume=True)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(base, catalogue, tmp_path):
    from transformers import TrainerCallback

    class Poison(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step == 5:
                with torch.no_grad():
                    next(p for p in model.parameters() if p.requires_grad).fill_(float("nan"))

    queries, products, negatives = catalogue
    examples = pair_examples(queries, products, negatives)
    with pytest.raises(TrainingDivergedError, match=r"at step 6.*checkpoint-4"):
        train_qwen_vl(
            reranker(base), examples, args(tmp_path), tmp_path / "m", callbacks=[Poison()]
        )
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == ["checkpoint-4"]
    assert not (tmp_path / "m" / "config.json").exists()


def test_cli_trains_on_stage1_negatives_and_a_mined_file(base, tmp_path):
    import json

    from typer.testing import CliRunner

    from retrieval.data import open_dataset
    from retrieval.data.synth import synthesize
    from search.cli import app

    synth = synthesize(tmp_path / "s", groups=12, seed=0, image_size=32)
    out, home = tmp_path / "m", tmp_path / "home"
    common = ["--model", str(base), "--max-pixels", str(4 * 28 * 28), "--lr", "1e-2"]
    args = ["train", "reranker", str(synth), "--kind", "qwen-vl", "--out", str(out), *common]
    res = CliRunner().invoke(
        app, [*args, "--encoder", "sparse", "--k", "10", "--data-dir", str(home)]
    )
    assert res.exit_code == 0, res.output
    assert "recall@1" in res.output and "steps" in res.output
    info = json.loads((out / "train_info.json").read_text())
    assert info["pairs"] > info["positives"] > 0 and info["steps"] >= 1
    assert list((out / "checkpoints").glob("checkpoint-*"))
    # the cross-encoder's defaults: mined hard + random negatives, the epoch chosen on valid
    assert info["mining"]["hard"] > 0 and info["mining"]["random"] > 0
    assert len(info["valid"]) == 2 and info["best"]["epoch"] in (1.0, 2.0)
    table = (out / "valid_epochs.md").read_text().split("\n\n")[0].splitlines()
    assert len(table) == 3 + 2 and sum("yes" in line for line in table) == 1
    assert table[2].startswith("| stage 1 |")
    loaded = build_reranker(f"{info['spec']},device=cpu")
    # the weight of stage 1's rank chosen on valid is recorded and applied on loading
    sidecar = json.loads((out / "search_reranker.json").read_text())
    assert sidecar["stage1_weight"] == info["stage1_weight"] == loaded.stage1_weight
    assert "| stage-1 weight |" in (out / "valid_epochs.md").read_text()
    query = open_dataset(str(synth)).queries("valid")[0]
    assert 0.0 < loaded.score([(query.product, Candidate(query.product, 0.5, 1))])[0] < 1.0

    # a mined file: ids reach the dataset's products, so images come along
    train = [q for q in open_dataset(str(synth)).queries("train") if q.matches][:3]
    others = [q.id for q in open_dataset(str(synth)).queries("valid")]
    rows = [
        {"query": q.product.title, "pos": [], "neg": [], "query_id": q.id}
        | {"pos_ids": list(q.matches), "neg_ids": others[:2]}
        for q in train
    ]
    mined = tmp_path / "neg.jsonl"
    mined.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = CliRunner().invoke(app, [*args, "--negatives", str(mined), "--out", str(tmp_path / "f")])
    assert res.exit_code == 0, res.output
    info = json.loads((tmp_path / "f" / "train_info.json").read_text())
    assert info["positives"] == sum(len(q.matches) for q in train)
    assert info["valid"] == [] and not (tmp_path / "f" / "valid_epochs.md").exists()
    assert info["pairs"] == info["positives"] + 2 * len(train)
