"""``search explain RUN ID_A ID_B``: a thin command over ``search.match.explain``, which
reads the match run folder; this module only draws the tables."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from search.cli.common import handle_errors, out

if TYPE_CHECKING:
    from search.match.explain import PairExplanation

app = typer.Typer()
BAR = 24  # characters of the widest contribution's bar


@app.command("explain")
@handle_errors
def explain_cmd(
    run: Annotated[Path, typer.Argument(help="A match run folder (search match --out).")],
    id_a: Annotated[str, typer.Argument(help="One listing id.")],
    id_b: Annotated[str, typer.Argument(help="The other listing id.")],
) -> None:
    """Why a match run matched two listings (or did not).

    Pair model: each feature's contribution to the logit. Stage 1: score and margin.
    """
    from search.match.explain import explain_pair

    show(explain_pair(run, id_a, id_b))


def show(ex: PairExplanation) -> None:
    """The pair, its verdict and the reasons, as rich tables."""
    head = Table(show_header=True, title=f"{ex.a['id']} · {ex.b['id']}")
    for col in ("", "a", "b"):
        head.add_column(col)
    for key in ("title", "price", "group"):
        head.add_row(key, str(ex.a.get(key) or ""), str(ex.b.get(key) or ""))
    out.print(head)
    verdict = "matched" if ex.matched else "not matched"
    why = f" by {ex.rule}" if ex.rule else ""
    score = ex.edge.get("score") if ex.edge else None
    primary = ex.run.get("primary")
    line = f"{verdict}{why}" + (f"; {primary} = {score:.4f}" if score is not None else "")
    if ex.edge is None:
        line += " (joined through other listings by group consistency, never scored as a pair)"
    out.print(line, highlight=False)
    if ex.label is not None:
        out.print(f"labelled {ex.label.verdict} ({ex.label.source}, {ex.label.at})")
    if ex.checks:
        rules = Table(title="thresholds")
        for col in ("score", "value", "threshold", "margin", ""):
            rules.add_column(col, justify="left" if col in ("score", "") else "right")
        for c in ex.checks:
            rules.add_row(
                c.score,
                _num(c.value),
                "off" if c.threshold is None else _num(c.threshold),
                _num(c.margin, signed=True),
                "admitted" if c.admitted else "",
            )
        out.print(rules)
    steps = ex.steps()
    if steps:
        width = max(abs(v) for _, v, _ in steps) or 1.0
        table = Table(title=f"pair model: contributions to the logit {ex.logit:+.4f}")
        for col in ("term", "contribution", "total", ""):
            table.add_column(col, justify="right" if col in ("contribution", "total") else "left")
        for name, value, total in steps:
            bar = "█" * max(1, round(BAR * abs(value) / width))
            table.add_row(
                name, f"{value:+.4f}", f"{total:+.4f}", f"[{'green' if value > 0 else 'red'}]{bar}"
            )
        out.print(table)


def _num(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.4f}" if signed else f"{value:.4f}"
