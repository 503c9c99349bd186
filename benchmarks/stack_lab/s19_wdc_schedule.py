"""Session 19 lab: the cross-encoder's schedule on wdc-products (kept as run).

    s19_wdc_schedule.py prep HOME DATA PREP.json   # mined rows + valid lists, once
    s19_wdc_schedule.py train PREP.json OUT [key=value ...]  # CrossEncoderConfig overrides

``prep`` mines the train split's negatives from HOME's index exactly as the trainer does
(``search.train.mine.mined_rows`` with CLI defaults) and writes them with the valid
split's lists as JSON (our own lab file). ``train`` runs ``train_cross_encoder`` from the
packaged MiniLM with the given overrides and prints the valid table.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from retrieval.atomic import write_json  # noqa: E402


def prep(home: str, data: str, out: str) -> None:
    from search.config import load_config
    from search.train.candidates import open_for_training
    from search.train.cross_encoder import CrossEncoderOptions
    from search.train.mine import mined_rows
    from search.train.registry import TrainJob
    from training.ranking import valid_lists

    cfg = load_config(None, store={"data_dir": Path(home)})
    dataset, name = open_for_training(cfg, data, None, None)
    opts = CrossEncoderOptions(model="x")
    rows, mined, _, (vq, vr) = mined_rows(
        cfg, TrainJob(data, Path(home) / "x"), opts, dataset, name
    )
    lists = [asdict(v) for v in valid_lists(vq, vr)]
    write_json(Path(out), {"rows": rows, "mined": mined, "valid": lists})
    print(len(rows), "rows;", len(lists), "valid lists;", mined)


def train(prep_file: str, out: str, overrides: list[str]) -> None:
    from retrieval.encoders.text import packaged_minilm
    from training.cross_encoder import train_cross_encoder
    from training.ranking import ValidList
    from training.reranker_config import CrossEncoderConfig

    blob = json.loads(Path(prep_file).read_text())
    valid = [
        ValidList(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
        for d in blob["valid"]
    ]
    default, kw = CrossEncoderConfig(), {}
    for item in overrides:  # each value as the type of its default (None: a float)
        k, v = item.split("=", 1)
        current = getattr(default, k, None)
        kw[k] = None if v == "None" else (float if current is None else type(current))(v)
    summary = train_cross_encoder(
        blob["rows"], packaged_minilm(), out, CrossEncoderConfig.from_options(kw), valid=valid
    )
    print(summary["valid_table"])
    print("stage-1 weight", summary["stage1_weight"], "steps", summary["global_step"])


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    if sys.argv[1] == "prep":
        prep(*sys.argv[2:5])
    else:
        train(sys.argv[2], sys.argv[3], sys.argv[4:])
