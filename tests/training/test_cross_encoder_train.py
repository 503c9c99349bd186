"""Cross-encoder training: the loss falls, the saved model reloads as the reranker with
the same scores, --resume continues the step count, a NaN loss stops the run."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("transformers")

from rerank.base import TEXT_SIDECAR  # noqa: E402
from rerank.cross_encoder import CrossEncoderReranker  # noqa: E402
from retrieval.errors import UsageError  # noqa: E402
from retrieval.types import Candidate, Product  # noqa: E402
from training.cross_encoder import (  # noqa: E402
    CrossEncoderConfig,
    load_model,
    score_lists,
    train_cross_encoder,
)
from training.cross_encoder_groups import GroupRows  # noqa: E402
from training.ranking import STAGE1_WEIGHTS, ValidList, lean_on_stage1, rank_metrics  # noqa: E402
from training.reranker_config import RECIPES  # noqa: E402
from training.resume import TrainingDivergedError  # noqa: E402

BRANDS = ["samsung galaxy", "xiaomi redmi", "nike air zoom", "apple iphone"]


def rows(n: int = 16) -> list[dict]:
    out = []
    for i in range(n):
        brand, other = BRANDS[i % 4], BRANDS[(i + 1) % 4]
        out.append(
            {
                "query": f"{brand} {i}",
                "pos": [f"{brand} {i} original"],
                "neg": [f"{other} {i} murah", f"{BRANDS[(i + 2) % 4]} {i}", f"{other} case"],
            }
        )
    return out


VALID = [ValidList("samsung galaxy 3", ("xiaomi redmi 3", "samsung galaxy 3 original"), (0, 1))]


def config(**kw) -> CrossEncoderConfig:
    base = dict(
        epochs=4,
        batch_size=4,
        group_size=4,
        lr=1e-3,
        warmup=0.1,
        save_steps=4,
        max_length=32,
        patience=0,  # every epoch runs
    )
    return CrossEncoderConfig(**{**base, **kw})


@pytest.mark.parametrize("loss", ["ce", "bce"])
def test_loss_falls_and_model_reloads(tiny_bert, tmp_path, loss):
    out = tmp_path / "ce"
    summary = train_cross_encoder(rows(), str(tiny_bert), out, config(loss=loss), valid=VALID)
    losses = summary["losses"]
    assert summary["global_step"] == 16
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4  # the loss falls
    assert len(summary["valid"]) == 4
    assert summary["best"]["hit@1"] == max(epoch["hit@1"] for epoch in summary["valid"])
    # the per-epoch table is in the folder, the kept epoch marked
    epochs, weights = (out / "valid_epochs.md").read_text().split("\n\n")
    table = epochs.splitlines()
    assert len(table) == 3 + 4 and sum("yes" in line for line in table) == 1
    # ... then the stage-1 weights tried on the kept epoch, the chosen one marked
    weights = weights.splitlines()
    assert len(weights) == 2 + len(STAGE1_WEIGHTS) and sum("yes" in w for w in weights) == 1
    assert f"| {summary['stage1_weight']:g} |" in next(w for w in weights if "yes" in w)
    # ... below the bar it must pass: the same lists in stage-1 order (positive second)
    assert table[2] == "| stage 1 | | 0.000 | 0.500 | |"
    assert summary["valid_stage1"] == {"hit@1": 0.0, "mrr@10": 0.5}
    assert (out / "checkpoints" / "checkpoint-16").is_dir()
    # the saved folder is the best epoch; it loads as the reranker and gives its scores
    tokenizer, model, fresh = load_model(str(out))
    assert fresh == frozenset()  # a trained reranker: its head comes from the checkpoint
    direct = score_lists(model, tokenizer, VALID, 32)[0]
    # ... and its valid metrics are the ones recorded for the best epoch
    again = rank_metrics(VALID, [direct])
    assert again == pytest.approx({k: summary["best"][k] for k in again}, abs=1e-6)
    # the text form it was trained on is recorded for the reranker
    weight = summary["stage1_weight"]
    assert json.loads((out / TEXT_SIDECAR).read_text()) == {
        "text": "codes",
        "fields": [],
        "stage1_weight": weight,
    }
    # ... and the reranker adds stage 1's rank at that weight, as the trainer ranked valid
    reranker = CrossEncoderReranker(str(out), device="cpu", max_length=32, activation="none")
    assert reranker.stage1_weight == weight
    pairs = [
        (Product("q", VALID[0].query), Candidate(Product(f"c{i}", t), 0.5, i + 1))
        for i, t in enumerate(VALID[0].texts)
    ]
    leaned = lean_on_stage1(VALID, [direct], weight)[0]
    assert reranker.score(pairs) == pytest.approx(leaned, abs=1e-4)


def test_resume_continues_the_step_count(tiny_bert, tmp_path):
    out = tmp_path / "ce"
    first = train_cross_encoder(rows(), str(tiny_bert), out, config(epochs=1))
    assert first["global_step"] == 4
    with pytest.raises(UsageError, match="pass --resume"):  # never mixes two runs
        train_cross_encoder(rows(), str(tiny_bert), out, config(epochs=2))
    more = train_cross_encoder(rows(), str(tiny_bert), out, config(epochs=2), resume=True)
    assert more["global_step"] == 8
    assert len(more["losses"]) == 8  # the log history of steps 1-4 came back, then 5-8
    with pytest.raises(UsageError, match="no checkpoint"):
        train_cross_encoder(rows(), str(tiny_bert), tmp_path / "fresh", config(), resume=True)


def test_a_resumed_run_chooses_the_weight_on_the_kept_folder(tiny_bert, tmp_path, monkeypatch):
    """Resumed after its kept epoch, the run has no kept scores in memory: the stage-1
    weight is chosen on the valid scores of the folder it keeps, loaded again."""
    import training.cross_encoder as ce

    calls: list[str] = []
    real = ce.load_model

    def right(model, tokenizer, lists, max_length, **kw):  # epoch 1: the match first
        calls.append("score")
        return [[float(label) for label in v.labels] for v in lists]

    def flat(model, tokenizer, lists, max_length, **kw):  # epoch 2: stage 1's order
        calls.append("score")
        return [[0.0] * len(v.texts) for v in lists]

    def load(path):
        calls.append(f"load {path}")
        return real(path)

    out = tmp_path / "ce"
    monkeypatch.setattr(ce, "score_lists", right)
    first = train_cross_encoder(rows(), str(tiny_bert), out, config(epochs=1), valid=VALID)
    assert first["best"]["hit@1"] == 1.0 and first["stage1_weight"] == 0.0
    monkeypatch.setattr(ce, "score_lists", flat)
    monkeypatch.setattr(ce, "load_model", load)
    calls.clear()
    more = train_cross_encoder(
        rows(), str(tiny_bert), out, config(epochs=2), valid=VALID, resume=True
    )
    assert more["best"]["epoch"] == 1 and len(more["valid"]) == 2  # epoch 2 not kept
    assert calls[-2:] == [f"load {out}", "score"]  # the kept folder, scored again
    assert json.loads((out / TEXT_SIDECAR).read_text())["stage1_weight"] == more["stage1_weight"]


def test_nan_loss_stops_with_the_step(tiny_bert, tmp_path, monkeypatch):
    import torch

    real = torch.nn.functional.cross_entropy
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] >= 6 else loss

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", poisoned)
    out = tmp_path / "ce"
    with pytest.raises(TrainingDivergedError, match="at step 6.*checkpoint-4"):
        train_cross_encoder(rows(), str(tiny_bert), out, config(epochs=4))
    assert not (out / "checkpoints" / "checkpoint-8").exists()


def test_rows_are_read_in_the_configured_text_form():
    row = {"query": "garmin 010-00715-20", "pos": ["nuvi 010-00715-20"], "neg": ["tv/dvd 2-pack"]}
    codes = GroupRows([row], 2, form="codes")[0]
    assert codes == [
        ("garmin 0100071520", "nuvi 0100071520"),
        ("garmin 0100071520", "tv/dvd 2pack"),
    ]
    assert GroupRows([row], 2, form="raw")[0][0] == ("garmin 010-00715-20", "nuvi 010-00715-20")


def test_by_default_an_epoch_without_gain_ends_the_run(tiny_bert, tmp_path):
    # the match and the candidate before it read alike: no epoch can rank valid better
    stuck = [ValidList("samsung galaxy 3", ("xiaomi redmi 3", "xiaomi redmi 3"), (0, 1))]
    cfg = config(patience=CrossEncoderConfig().patience, stage1_weight=0)
    summary = train_cross_encoder(rows(), str(tiny_bert), tmp_path / "ce", cfg, valid=stuck)
    assert len(summary["valid"]) == 2 and summary["global_step"] == 8  # of 4 epochs
    assert summary["best"]["epoch"] == 1.0


def test_negatives_that_read_like_the_query_or_a_positive_are_left_out(caplog):
    rows = [
        {  # wdc-products: offers with one title in different groups
            "query": "Kingston 8GB DDR3 1600MHz",
            "pos": ["KINGSTON 8GB DDR3 1600MHz CL10", "Kingston 8gb ddr3  1600mhz"],
            "neg": ["kingston 8GB ddr3 1600MHZ", "Kingston 8GB DDR3 1600MHz cl10", "Corsair 8GB"],
        },
        {"query": "a b", "pos": ["a b c"], "neg": ["A  B"]},  # nothing left to learn from
    ]
    with caplog.at_level("WARNING"):
        data = GroupRows(rows, 3, form="codes")
    assert data.identical == 3
    assert len(data) == 1 and data.rows[0]["neg"] == ["Corsair 8GB"]
    assert all(t == "Corsair 8GB" for _, t in data[0][1:])
    assert "3 negatives that read like their query or a positive" in caplog.text
    assert "1 rows without a positive or a negative" in caplog.text
    # a dash is read, so a different code is no duplicate
    assert GroupRows([{"query": "x-1", "pos": ["y"], "neg": ["x 1"]}], 2).identical == 0


def test_bad_options(tiny_bert, tmp_path):
    with pytest.raises(UsageError, match="group-size"):
        train_cross_encoder(rows(), str(tiny_bert), tmp_path, config(group_size=1))
    with pytest.raises(UsageError, match="unknown text form"):
        train_cross_encoder(rows(), str(tiny_bert), tmp_path, config(text="lower"))
    with pytest.raises(UsageError, match="positive and a negative"):
        train_cross_encoder([{"query": "a", "pos": ["b"], "neg": []}], str(tiny_bert), tmp_path)


def test_recipes_head_rate_and_no_valid(tiny_bert, tmp_path, caplog):
    """A plain encoder gets the fresh-head recipe: its new head learns at head_lr while
    the body (lr ~ 0 here) stays put; a trained reranker gets the low-LR recipe; a field
    set by the user wins over both. Without valid queries the run says so and keeps
    the last epoch."""
    import torch

    _, _, fresh = load_model(str(tiny_bert))
    assert fresh and all(n.startswith("classifier") for n in fresh)
    torch.manual_seed(0)
    _, before, _ = load_model(str(tiny_bert))
    out = tmp_path / "a"
    torch.manual_seed(0)  # the same random head inside the trainer
    with caplog.at_level("WARNING"):
        first = train_cross_encoder(
            rows(), str(tiny_bert), out, config(lr=1e-9, head_lr=None, epochs=None, max_steps=3)
        )
    assert "no valid queries" in caplog.text and first["valid"] == []
    assert first["recipe"] == "fresh-head"
    assert first["config"]["head_lr"] == RECIPES["fresh-head"]["head_lr"]
    assert first["config"]["epochs"] == RECIPES["fresh-head"]["epochs"]
    assert first["config"]["lr"] == 1e-9  # given: kept
    _, after, _ = load_model(str(out))  # the last step's model, saved whole
    key = "bert.embeddings.word_embeddings.weight"
    assert torch.allclose(after.state_dict()[key], before.state_dict()[key], atol=1e-6)
    moved = (after.classifier.weight - before.classifier.weight).abs().max().item()
    assert moved > 1e-4
    again = train_cross_encoder(rows(), str(out), tmp_path / "b", config(lr=None, max_steps=1))
    assert again["recipe"] == "reranker" and again["config"]["lr"] == RECIPES["reranker"]["lr"]


def test_precision_on_a_cpu(tiny_bert, tmp_path, monkeypatch):
    """auto on a CPU with native bf16: the forward pass runs under bf16 autocast inside
    the trainer (accelerate's process-wide state stays fp32 for later trainers); fp32
    asked, or a CPU without it: no autocast; bf16 asked on a CPU runs there (use_cpu)."""
    import torch
    from accelerate.state import AcceleratorState

    import training.callbacks as cb
    import training.cross_encoder as tce

    seen: list = []
    forward = tce.GroupTrainer.compute_loss

    def spy(self, model, inputs, *a, **kw):  # is autocast on while the model runs?
        hook = model.register_forward_pre_hook(
            lambda *_: seen.append(torch.is_autocast_enabled("cpu"))
        )
        try:
            return forward(self, model, inputs, *a, **kw)
        finally:
            hook.remove()

    monkeypatch.setattr(tce.GroupTrainer, "compute_loss", spy)
    for native, precision, want in (
        (True, "auto", True),
        (False, "auto", False),
        (True, "fp32", False),
    ):
        monkeypatch.setattr(tce, "cpu_autocast_bf16", lambda native=native: native)
        seen.clear()
        train_cross_encoder(
            rows(),
            str(tiny_bert),
            tmp_path / f"{native}{precision}",
            config(max_steps=1, precision=precision),
        )
        assert seen and all(s is want for s in seen)
        assert str(AcceleratorState().mixed_precision) == "no"
    base = dict(epochs=1.0, batch_size=2, lr=1e-4, warmup=0.0, save_steps=10)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    asked = cb.common_arguments(tmp_path, config(precision="bf16", **base))
    assert asked["bf16"] and asked["use_cpu"]
    assert "use_cpu" not in cb.common_arguments(tmp_path, config(**base))
