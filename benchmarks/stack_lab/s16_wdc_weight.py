# ruff: noqa
# Lab record of session 16 (README, Measured): kept as run, /tmp paths as used then.
"""Choose the stage-1 weight of last session's wdc CE with the shipped code, on the
trainer's valid sample (500 queries, K=20) scored by that CE (cached, raw logits)."""

import pickle, sys
import numpy as np

sys.path.insert(0, "/work/main")
from rerank.blend import logit
from training.ranking import (
    ValidList,
    choose_stage1_weight,
    sample_lists,
    weight_table,
    stage1_metrics,
)

qs, rows = pickle.loads(open("/tmp/s16/wdc.valid", "rb").read())
lists, scores = [], []
for q, r in zip(qs, rows):
    found = {c.id for c in r}
    lists.append(
        ValidList(
            q.product.title,
            tuple(c.product.title for c in r),
            tuple(int(c.id in q.matches) for c in r),
            len(set(q.matches) - found - {q.id}),
        )
    )
    scores.append(list(logit([c.features["ce"] for c in r])))
print("stage 1", stage1_metrics(lists))
w, table = choose_stage1_weight(lists, scores)
print(weight_table(table, w))
