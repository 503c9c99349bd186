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
from search.config import AppConfig, EvalConfig

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
    cfg: AppConfig,
    dataset_path: str,
    folder: Path,
    encoders: Sequence[str] = (),
    fmt: str | None = None,
) -> str:
    """The command that (re)builds this run's fine-tuned encoders and matcher, with every
    setting that shaped them: ``--config`` (absolute; the file is named, never read here
    or by ``search match``), the store (``--data-dir``, ``--qdrant-url`` / ``--backend``;
    an API key never: ``QDRANT_API_KEY``), ``--format``, the zero-shot ``encoders``
    (``--encoder``), ``--fine-tune-loss`` and the flags of the split the step is chosen
    on and of the matcher's tuning. A flag is named when its value is not the default or
    the config file set it (a flag given over the file wins again). With ``--resume``: of
    ``text,image``, the encoder whose folder is left is reused and only the deleted one
    trained again (without it, the finished one is refused)."""
    from search.config import DEFAULT_ENCODERS
    from search.config_fine_tune import FineTuneConfig

    def named(key: str, value: Any, default: Any) -> bool:
        return value != default or key in cfg.source_keys

    words = ["search", "eval", str(Path(dataset_path).resolve()), "--fine-tune"]
    words += [",".join(cfg.fine_tune.encoders), "--out", str(folder.resolve()), "--resume"]
    words += ["--config", str(cfg.source)] if cfg.source is not None else []
    words += _store_words(cfg)
    words += ["--format", fmt] if fmt else []
    if named("fine_tune.loss", cfg.fine_tune.loss, FineTuneConfig.loss):
        words += ["--fine-tune-loss", cfg.fine_tune.loss]
    if encoders and named("stage1.encoders", list(encoders), list(DEFAULT_ENCODERS)):
        words += [w for e in encoders for w in ("--encoder", e)]
    ev, default = cfg.eval, EvalConfig()
    for flag in ("split", "tune_split", "match_against"):
        if named(f"eval.{flag}", getattr(ev, flag), getattr(default, flag)):
            words += [f"--{flag.replace('_', '-')}", getattr(ev, flag)]
    if named("eval.match_pair", ev.match_pair, False):
        words += ["--match-pair" if ev.match_pair else "--no-match-pair"]
    words += ["--labels", str(ev.labels.resolve())] if ev.labels is not None else []
    return shlex.join(words)


def _store_words(cfg: AppConfig) -> list[str]:
    """Where the run's collection lives: an edge data dir other than the per-user folder
    (``SEARCH_HOME`` too: another shell may not set it), or the server's URL unless it
    holds credentials (``QDRANT_URL`` is read then)."""
    from search.config import user_data_home

    store = cfg.store
    if store.backend == "server":
        url = store.url
        return ["--qdrant-url", url] if url and "@" not in url else ["--backend", "server"]
    words = ["--backend", "edge"] if "store.backend" in cfg.source_keys else []
    data_dir = store.data_dir.resolve()
    if data_dir != user_data_home().resolve() or "store.data_dir" in cfg.source_keys:
        words += ["--data-dir", str(data_dir)]
    return words


def spec_of(
    kind: str, record: dict[str, Any], work: Path
) -> tuple[str | None, dict[str, Any], str]:
    """The encoder spec to index (None: zero-shot kept), its info and the note."""
    if record.get("skipped"):
        return None, {}, f"fine-tune {kind} skipped, zero-shot kept: {record['skipped']}"
    zero, best = record["zero_shot_f1"], record["best_f1"]
    photos = record.get("skipped_photos") or {}
    left = (
        f"; {photos['count']} unreadable photos left out of training and of the valid "
        "scoring (skipped_photos in fine-tune.json)"
        if photos.get("count")
        else ""
    )
    if not record.get("improved"):
        return (
            None,
            {},
            (
                f"fine-tune {kind}: no step beat the zero-shot valid F1 {zero:.4f} "
                f"(best {best:.4f}): zero-shot kept{left}"
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
        + f"; vector {vector!r} from {path}{left}"
    )
    return spec, info, note
