# ruff: noqa
# Lab record of session 15 (README, Measured): kept as run, paths as used then.
"""Lab: the cross-encoder reads code-normalised titles (train, valid check, scoring); stage 1
and pair-gbdt unchanged. Runs stage2_bench.run with the patches in place."""

import os, re, sys, json, argparse

sys.path.insert(0, "/work/main")
MODE = os.environ["NORM"]
CODE = re.compile(r"(?<![a-z0-9])[a-z0-9]+(?:[-/][a-z0-9]+)+(?![a-z0-9])")
TOK = re.compile(r"(?<![a-z0-9.])[a-z0-9]+(?![a-z0-9])")


def norm(t: str) -> str:
    t = t.lower()
    t = CODE.sub(
        lambda m: (
            m.group(0).replace("-", "").replace("/", "")
            if re.search(r"\d", m.group(0))
            else m.group(0)
        ),
        t,
    )
    if MODE == "chars":

        def sp(m):
            w = m.group(0)
            if len(w) >= 4 and re.search(r"\d", w) and (re.search(r"[a-z]", w) or len(w) >= 5):
                return " ".join(w)
            return w

        t = TOK.sub(sp, t)
    return t


import rerank.base as rb

orig = rb.Formatter.__call__
rb.Formatter.__call__ = lambda self, p: norm(orig(self, p))
import training.ranking as tr

ovl = tr.valid_lists


def vl(qs, rows):
    out = ovl(qs, rows)
    import dataclasses

    return [
        dataclasses.replace(x, query=norm(x.query), texts=tuple(norm(s) for s in x.texts))
        for x in out
    ]


tr.valid_lists = vl
import search.train.mine as sm

omr = sm.mined_rows


def mr(*a, **k):
    rows, *rest = omr(*a, **k)
    for r in rows:
        r["query"] = norm(r["query"])
        r["pos"] = [norm(s) for s in r["pos"]]
        r["neg"] = [norm(s) for s in r["neg"]]
    return (rows, *rest)


sm.mined_rows = mr
import search.train.cross_encoder as sce

sce.mined_rows = mr
print(
    norm(
        "sony lcs-twa/r red soft case lcstwar garmin 010-00715-20 yamaha ysp-3050bl 26 ' tv/dvd 2.0 cu"
    )
)
sys.argv = ["stage2_bench"] + sys.argv[1:]
import benchmarks.stage2_bench as b

b.main()
