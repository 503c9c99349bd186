"""``search match``: a thin command over ``search.match.job.match_dataset``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from retrieval.checks import MAX_COUNT, MAX_HITS
from retrieval.errors import UsageError
from search.cli.common import check_out, err, handle_errors, out, progress_bars
from search.cli.options import (
    Collection,
    DatasetPath,
    Format,
    LabelsFile,
    StoreFlags,
    finite,
    option_group,
    store_options,
)

if TYPE_CHECKING:
    from search.match.job import RuleFlags

app = typer.Typer()


def parse_thresholds(items: list[str] | None) -> dict[str, float]:
    """``["text=0.8", "mean=0.7"]`` -> ``{"text": 0.8, "mean": 0.7}``."""
    out_: dict[str, float] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        try:
            out_[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise UsageError(f"bad --threshold {item!r}: expected NAME=VALUE, e.g. mean=0.7")
        if not math.isfinite(out_[name.strip()]):
            raise UsageError(f"bad --threshold {item!r}: the value must be a finite number")
    return out_


@dataclass(frozen=True)
class RuleOptions:
    """A rule given on the command line instead of a matcher file."""

    threshold: Annotated[
        list[str] | None,
        typer.Option(
            "--threshold",
            "-t",
            help="Without --matcher: NAME=VALUE per score (a vector or 'mean'); several: union.",
        ),
    ] = None
    min2: Annotated[
        float | None,
        typer.Option(
            "--min2",
            callback=finite,
            help="Keep a lone listing's nearest unless under this score.",
        ),
    ] = None
    groups: Annotated[
        str,
        typer.Option("--groups", help="none, mutual, symmetric, components or agglomerative."),
    ] = "none"
    group_cap: Annotated[
        int, typer.Option("--group-cap", min=0, max=MAX_COUNT, help="Largest group (0: no cap).")
    ] = 0
    inb: Annotated[
        int, typer.Option("--inb", min=0, max=3, help="Rounds of neighbourhood blending (0-3).")
    ] = 0
    k: Annotated[
        int, typer.Option("--k", min=1, max=MAX_HITS, help="Candidates per listing and vector.")
    ] = 20

    def flags(self) -> RuleFlags:
        """The job's ``RuleFlags`` (each flag bounded where it is declared; a threshold
        that is not NAME=finite number is a one-line error)."""
        from search.match.job import RuleFlags

        thresholds = parse_thresholds(self.threshold)
        return RuleFlags(thresholds, self.min2, self.groups, self.group_cap, self.inb, self.k)


@app.command("match")
@handle_errors
@store_options()
@option_group(RuleOptions, "rule_flags")
def match_cmd(
    dataset: DatasetPath,
    matcher: Annotated[
        Path | None,
        typer.Option("--matcher", "-m", help="Matcher file written by `search eval`."),
    ] = None,
    rule: Annotated[
        str | None, typer.Option("--rule", help="A rule of the matcher (default: its own).")
    ] = None,
    encoder: Annotated[
        list[str] | None,
        typer.Option(
            "--encoder",
            "-e",
            help="Without --matcher, to index a dataset not indexed yet (default: text, sparse).",
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Output folder (default runs/<collection>-match)."),
    ] = None,
    labels: LabelsFile = None,
    explain_pairs: Annotated[
        int | None,
        typer.Option(
            "--explain-pairs",
            min=0,
            max=MAX_COUNT,
            help="Pairs nearest the threshold whose pair-model contributions the run keeps "
            "(for search explain and the studio; each costs about 200 predictions; "
            "default 2000).",
        ),
    ] = None,
    collection: Collection = None,
    fmt: Format = None,
    *,
    store: StoreFlags,
    rule_flags: RuleOptions,
) -> None:
    """Match every listing (Kaggle layout): writes matches.csv and matches.jsonl."""
    from search.match.job import match_dataset

    flags = None
    if matcher is None:
        flags = rule_flags.flags()
    elif rule_flags.threshold or encoder:
        raise UsageError("a matcher names its rule and encoders: drop --threshold / --encoder")
    check_out(out_dir or Path("runs"), "--out" if out_dir else "the default folder (--out)")
    cfg = store.load(stage1={"encoders": encoder or None})
    with progress_bars() as progress:
        result = match_dataset(
            cfg,
            dataset,
            matcher_path=matcher,
            flags=flags,
            rule_name=rule,
            fmt=fmt,
            collection=collection,
            out=out_dir,
            labels=labels,
            explain_pairs=explain_pairs,
            progress=progress,
        )
    for note in result.notes:
        err.print(f"note: {note}", highlight=False)
    line = (
        f"{result.listings} listings, {result.pairs} matched pairs, rule {result.rule}, "
        f"{result.seconds:.1f}s ({result.rate:.0f} listings/s)"
    )
    out.print(line, highlight=False)
    out.print(f"matches: {result.csv}", highlight=False)
    out.print(f"details: {result.jsonl}", highlight=False)
    scored = result.score_line()
    if scored is not None:
        out.print(scored, highlight=False)
