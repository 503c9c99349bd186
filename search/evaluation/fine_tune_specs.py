"""The encoder specs of ``search eval --fine-tune``: the start model of each fine-tuning,
read from the zero-shot encoder list (``base_text``, ``base_image``), the spec, info and
note of a finished one (``spec_of``), and the command that rebuilds it (``rebuild_command``,
which ``matcher.json`` records and ``search match`` names when its folder is gone)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from retrieval.errors import UsageError
from retrieval.types import ComponentSpec
from search.config import AppConfig

VECTORS = {"text": "text_ft", "image": "image_ft"}  # what each fine-tuned encoder indexes
# timm spec options that say how the model runs, kept on the fine-tuned folder's spec
RUN_OPTIONS = ("device", "precision", "batch_size", "num_workers", "jit")
MODEL_OPTIONS = ("pretrained", "key_map", "pool", "image_size")  # what the trainer starts from


def base_text(encoders: Sequence[str], model: str | None) -> tuple[str, dict[str, str]]:
    """The start model and the spec options of the zero-shot ``text`` encoder."""
    from retrieval.encoders.text import resolve_model

    for text in encoders:
        spec = ComponentSpec.parse(text)
        if spec.kind == "text" and spec.options.get("name", "text") == "text":
            options = {k: v for k, v in spec.options.items() if k != "name"}
            return resolve_model(model or spec.model), options
    return resolve_model(model), {}


def base_image(encoders: Sequence[str], model: str | None) -> tuple[str, dict[str, str]]:
    """The start model of the image fine-tuning (``fine_tune.image_model``, else the model
    and weights of the first zero-shot ``timm`` encoder) and the options of how it runs."""
    for text in encoders:
        spec = ComponentSpec.parse(text)
        if spec.kind == "timm" and spec.model:
            options = {k: v for k, v in spec.options.items() if k in RUN_OPTIONS}
            if model:
                return model.removeprefix("timm:"), options
            weights = {k: v for k, v in spec.options.items() if k in MODEL_OPTIONS}
            return str(ComponentSpec("timm", spec.model, weights)).removeprefix("timm:"), options
    if model:
        return model.removeprefix("timm:"), {}
    raise UsageError(
        "--fine-tune image starts from the zero-shot timm image encoder: add one with --encoder "
        '"timm:efficientnet_lite0,pretrained=WEIGHTS,key_map=order" (or set fine_tune.image_model)'
    )


def rebuild_command(
    cfg: AppConfig, dataset_path: str, folder: Path, encoders: Sequence[str] = ()
) -> str:
    """The command that (re)builds this run's fine-tuned encoders and matcher; ``encoders``
    (the zero-shot list) are named with ``--encoder`` unless they are the defaults. With
    ``--resume``: of ``text,image``, the encoder whose folder is left is reused and only
    the deleted one trained again (without it, the finished one is refused)."""
    from search.config import DEFAULT_ENCODERS
    from search.config_fine_tune import FineTuneConfig

    words = ["search", "eval", str(Path(dataset_path).resolve()), "--fine-tune"]
    words += [",".join(cfg.fine_tune.encoders), "--out", str(folder.resolve()), "--resume"]
    if cfg.fine_tune.loss != FineTuneConfig.loss:
        words += ["--fine-tune-loss", cfg.fine_tune.loss]
    if encoders and list(encoders) != list(DEFAULT_ENCODERS):
        words += [w for e in encoders for w in ("--encoder", e)]
    words += ["--match-pair"] if cfg.eval.match_pair else []
    return shlex.join(words)


def spec_of(
    kind: str, record: dict[str, Any], work: Path
) -> tuple[str | None, dict[str, Any], str]:
    """The encoder spec to index (None: zero-shot kept), its info and the note."""
    if record.get("skipped"):
        return None, {}, f"fine-tune {kind} skipped, zero-shot kept: {record['skipped']}"
    zero, best = record["zero_shot_f1"], record["best_f1"]
    if not record.get("improved"):
        return (
            None,
            {},
            (
                f"fine-tune {kind}: no step beat the zero-shot valid F1 {zero:.4f} "
                f"(best {best:.4f}): zero-shot kept"
            ),
        )
    vector = VECTORS[kind]
    options = "".join(f",{k}={v}" for k, v in record.get("options", {}).items())
    path = Path(record.get("path") or work)
    spec = f"{'text' if kind == 'text' else 'timm'}:{path}{options},name={vector}"
    info = {"path": str(path), "command": record["command"], "best_step": record["best_step"]}
    info["loss"] = record.get("loss", "mnrl")
    tried = ", ".join(
        f"{loss} {c['best_f1']:.4f} at step {c['best_step']} of {c['steps_run']}"
        for loss, c in record.get("curves", {}).items()
    )
    minutes = record["seconds"] / 60
    note = (
        f"fine-tune {kind}: loss {info['loss']}, step {record['best_step']} of "
        f"{record['steps_run']} chosen on valid (match F1 {zero:.4f} zero-shot -> {best:.4f}"
        + (f"; tried {tried}" if tried and kind == "text" else "")
        + f"), {minutes:.1f} min"
        + (f" at {record['step_seconds']:.2f} s/step" if record.get("step_seconds") else "")
        + f"; vector {vector!r} from {path}"
    )
    return spec, info, note
