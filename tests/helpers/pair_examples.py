"""Hand-made stage-1 candidates and toy pair-gbdt examples shared by the rerank tests."""

from __future__ import annotations

import random

from retrieval.types import Candidate, Product


def cand(title: str, score: float = 0.5, rank: int = 1, **fields) -> Candidate:
    sims = {k: v for k, v in fields.items() if k.startswith("sim_")}
    rest = {k: v for k, v in fields.items() if not k.startswith("sim_")}
    feats = {"stage1_score": score, "stage1_rank": rank, **sims}
    return Candidate(Product(f"c-{title}", title, fields=rest), score, rank, feats)


def toy_examples(n: int, seed: int) -> list:
    """Queries with one match (same model code and capacity) among four siblings; stage 1
    puts the match first only half the time."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        model, cap = f"x{i}{rng.randint(10, 99)}", rng.choice([64, 128, 256])
        titles = [f"phone {model} {cap}gb", f"phone {model} {cap * 2}gb"]
        titles += [f"phone {model}{j} {cap}gb" for j in range(3)]
        order = list(range(5))
        rng.shuffle(order)
        cands = [
            cand(titles[t], 1.0 - r / 10, r + 1, sim_text=0.9 - r / 20 + rng.random() / 10)
            for r, t in enumerate(order)
        ]
        out.append(
            (Product(f"q{i}", f"{model} phone {cap} GB"), cands, [int(t == 0) for t in order])
        )
    return out
