"""The menu of rules a matcher is tuned from, each tuned on the valid split and scored
on valid and test (``tune_all``), and the choice among them (``choose``,
``best_matcher``: the simplest rule within ``MARGIN`` of the best F1 on valid).

Each rule is a switch a user can read off the table: per-vector thresholds, their
weighted mean, min2, the union, group consistency, neighbourhood blending and, with a
pair model, its probability under the same rules.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

from retrieval.metrics import MatchScores
from retrieval.types import Product, ProgressFactory
from search.match.edges import CSLS, MEAN
from search.match.edgeset import EdgeSet
from search.match.matcher import Matcher, PairModel
from search.match.pair_model import PAIR
from search.match.rules import Rule
from search.match.tuning.thresholds import score_rule, tune_rule

log = logging.getLogger(__name__)
MARGIN = 0.005  # F1 on valid a more complex rule must gain to be preferred


@dataclass
class RuleScore:
    """One tuned rule and its scores on the tuning and the scored split."""

    rule: Rule
    stage: str  # stage1 (similarities only) or stage2 (the pair model)
    valid: MatchScores
    test: MatchScores


def stage1_rules(names: Sequence[str], inb: int = 1, cap: int = 0) -> list[Rule]:
    """The stage-1 rule templates over the named vectors (thresholds are tuned), simple
    ones first: each cosine, their mean, min2, the union, groups, INB, local scaling."""
    scores = [*names, MEAN] if len(names) > 1 else list(names)
    top = scores[-1]  # the mean when there are several vectors
    rules = [Rule(n, {n: 0.5}, n) for n in scores]
    rules.append(Rule(f"{top}+min2", {top: 0.5}, top, min2=0.0))
    if len(names) > 1:
        union = dict.fromkeys(scores, 0.5)
        rules += [Rule("union", dict(union), MEAN), Rule("union+min2", union, MEAN, min2=0.0)]
    last = rules[-1]
    rules.append(replace(last, name=f"{last.name}+components", groups="components", group_cap=cap))
    if inb:
        rules.append(replace(last, name=f"inb{inb}+{last.name}", inb=inb))
    local = [CSLS + n for n in scores]
    rules += [Rule(n, {n: 0.0}, n) for n in local]
    if len(names) > 1:
        rules.append(Rule("csls-union+min2", dict.fromkeys(local, 0.0), local[-1], min2=-1.0))
    return rules


def pair_rules(cap: int = 0) -> list[Rule]:
    """The rule templates over the pair model's probability."""
    base = Rule("pair", {PAIR: 0.5}, PAIR, group_cap=cap)
    return [
        base,
        replace(base, name="pair+min2", min2=0.0),
        replace(base, name="pair+min2+components", min2=0.0, groups="components"),
        replace(base, name="pair+min2+agglomerative", min2=0.0, groups="agglomerative"),
    ]


def largest_group(products: Sequence[Product]) -> int:
    """The size of the largest labelled group: the cap of a predicted group."""
    sizes = Counter(p.group for p in products if p.group is not None)
    return max(sizes.values(), default=0)


def tune_all(
    templates: Sequence[Rule],
    valid: EdgeSet,
    test: EdgeSet,
    stage: str,
    progress: ProgressFactory | None = None,
) -> list[RuleScore]:
    """Tune each template on valid and score it on both splits (``match_scores``)."""
    vt, tt = valid.targets(), test.targets()
    tuned: dict[str, Rule] = {}
    out = []
    tick = progress(f"tuning {stage} rules", len(templates)) if progress else None
    # one F1 evaluation at a time: agglomerative rules against a whole catalogue take
    # minutes each, which a per-rule bar showed as a frozen tick
    evals = progress(f"{stage} rules: F1 evaluations", None) if progress else None
    for tpl in templates:
        if tpl.inb and tpl.inb_threshold is None:  # blend the matches of the rule it extends
            src = tuned.get(tpl.name.split("+", 1)[1])
            if src is not None:
                tpl = replace(tpl, inb_threshold=src.thresholds[src.primary])
        rule = tune_rule(valid.query_edges(tpl, progress), tpl, valid.n, vt, tick=evals)
        tuned[rule.name] = rule
        v = score_rule(valid.query_edges(rule), rule, valid.n, vt)
        t = score_rule(test.query_edges(rule, progress), rule, test.n, tt)
        out.append(RuleScore(rule, stage, v, t))
        log.info("%s: valid F1 %.4f, test F1 %.4f", rule.name, v.f1, t.f1)
        if tick:
            tick(1)
    return out


def choose(scores: Sequence[RuleScore]) -> RuleScore:
    """The first rule (simplest first) within ``MARGIN`` of the best F1 on valid."""
    top = max(s.valid.f1 for s in scores)
    return next(s for s in scores if s.valid.f1 >= top - MARGIN)


def best_matcher(
    scores: Sequence[RuleScore],
    encoders: list[str],
    es: EdgeSet,
    pair: PairModel | None,
    info: dict,
) -> Matcher:
    """The matcher of every tuned rule, applying the one best on valid; a rule with more
    switches must beat a simpler one (listed earlier) by ``MARGIN`` to be chosen, so a
    small valid split does not pick a complicated rule for noise."""
    best = choose(scores)
    return Matcher(
        encoders=encoders,
        vectors=list(es.weights),
        weights=dict(es.weights),
        rules=[s.rule for s in scores],
        rule=best.rule.name,
        k=es.k,
        pair=pair,
        info={
            **info,
            "valid_f1": {s.rule.name: round(s.valid.f1, 6) for s in scores},
            "test_f1": {s.rule.name: round(s.test.f1, 6) for s in scores},
        },
    )
