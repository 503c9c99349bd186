"""The studio's groups: the predicted groups of a match run (connected components of its
matched edges) by size, paged on the server, each with its listings, the edges inside,
the edges the rule refused, and for a labelled run the true group beside it (false
merges and false splits marked); a histogram of edge scores with the threshold.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from retrieval.errors import UsageError
from search.web.studio_data import Edge, RunData, number

PAGE = 50  # groups per page
PREVIEW = 12  # listings shown per group in the list
MAX_EDGES = 300  # edges shown inside one group
MAX_LISTINGS = 500  # listings shown of one group (a runaway component can hold thousands)
BINS = 40


def components(ids: list[str], edges: list[Edge]) -> list[list[str]]:
    """Connected components over the matched edges, biggest first, then by first id."""
    parent = {i: i for i in ids}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for e in edges:
        if e.matched:
            ra, rb = find(e.a), find(e.b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    groups: dict[str, list[str]] = defaultdict(list)
    for i in ids:
        groups[find(i)].append(i)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: (-len(g), g[0]))


class Groups:
    """Predicted groups, their edges and, for a labelled run, the truth beside them."""

    def __init__(self, run: RunData) -> None:
        self.run = run
        self.listings = run.listings
        self.groups = components(list(run.listings), run.edges)
        self.group_of = {i: g for g, members in enumerate(self.groups) for i in members}
        self.touching: dict[int, list[Edge]] = defaultdict(list)
        for e in run.edges:
            ga, gb = self.group_of[e.a], self.group_of[e.b]
            self.touching[ga].append(e)
            if gb != ga:
                self.touching[gb].append(e)
        self.labelled = any(item["group"] is not None for item in run.listings.values())
        self.truth: dict[str, list[str]] = defaultdict(list)
        for pid in run.listings:
            self.truth[self.true_group(pid)].append(pid)
        self.errors = {g: self._errors(g) for g in range(len(self.groups))}

    def true_group(self, pid: str) -> str:
        group = self.listings[pid]["group"]
        return group if group is not None else f"(alone) {pid}"

    def _errors(self, g: int) -> dict[str, int]:
        if not self.labelled:
            return {"merged": 0, "split": 0}
        counts = Counter(self.true_group(p) for p in self.groups[g])
        main = self._main(g, counts)
        merged = len(self.groups[g]) - counts[main]
        split = len(self.truth[main]) - counts[main]
        return {"merged": merged, "split": split}

    def _main(self, g: int, counts: Counter | None = None) -> str:
        counts = counts or Counter(self.true_group(p) for p in self.groups[g])
        return min(counts, key=lambda t: (-counts[t], t))

    def card(self, pid: str) -> dict[str, Any]:
        item = self.listings[pid]
        return {k: item[k] for k in ("id", "title", "image", "price")}

    def summary(self) -> dict[str, Any]:
        sizes = Counter(len(g) for g in self.groups)
        return {
            "groups": len(self.groups),
            "multi_groups": sum(n for size, n in sizes.items() if size > 1),
            "in_multi": sum(size * n for size, n in sizes.items() if size > 1),
            "largest": len(self.groups[0]) if self.groups else 0,
            "sizes": {str(k): v for k, v in sorted(sizes.items())},
            "edges": len(self.run.edges),
            "matched": sum(e.matched for e in self.run.edges),
            "labelled": self.labelled,
            "with_errors": sum(1 for e in self.errors.values() if e["merged"] or e["split"]),
        }

    def search(self, q: str) -> list[int]:
        """Groups holding a listing whose id is ``q`` or whose title contains it."""
        q = q.strip().lower()
        if q in self.listings:
            return [self.group_of[q]]
        hits = {self.group_of[p] for p, item in self.listings.items() if p.lower() == q}
        hits |= {self.group_of[p] for p, i in self.listings.items() if q in i["title"].lower()}
        return sorted(hits)

    def page(self, page: int = 0, q: str = "", errors: bool = False) -> dict[str, Any]:
        """One page of groups (biggest first), filtered by a search and by errors."""
        if page < 0:
            raise UsageError("page must be >= 0")
        chosen = self.search(q) if q.strip() else range(len(self.groups))
        if errors:
            chosen = [g for g in chosen if self.errors[g]["merged"] or self.errors[g]["split"]]
        chosen = list(chosen)
        rows = []
        for g in chosen[page * PAGE : (page + 1) * PAGE]:
            members = self.groups[g]
            rows.append(
                {
                    "group": g,
                    "size": len(members),
                    "listings": [self.card(p) for p in members[:PREVIEW]],
                    **self.errors[g],
                }
            )
        return {"total": len(chosen), "page": page, "per_page": PAGE, "groups": rows}

    def _edge_row(self, e: Edge) -> dict[str, Any]:
        row = {"a": e.a, "b": e.b, "score": e.score, "rule": e.rule, "matched": e.matched}
        if self.labelled:
            same = self.true_group(e.a) == self.true_group(e.b)
            row["truth"] = same
            row["error"] = (
                "false merge"
                if e.matched and not same
                else ("false split" if same and not e.matched else None)
            )
        return row

    def group(self, g: int) -> dict[str, Any]:
        """One group whole: listings, edges inside, refused edges, the truth beside it."""
        if not 0 <= g < len(self.groups):
            raise UsageError(f"no group {g} (0 to {len(self.groups) - 1})")
        members = self.groups[g]
        touching = sorted(self.touching[g], key=lambda e: (-(e.score or 0.0), e.a, e.b))
        inside = [e for e in touching if e.matched]
        refused = [e for e in touching if not e.matched]
        out: dict[str, Any] = {"group": g, "size": len(members), **self.errors[g]}
        main = self._main(g) if self.labelled else None
        cards = []
        for p in members[:MAX_LISTINGS]:
            card = self.card(p)
            if main is not None:
                card["true_group"] = self.listings[p]["group"]
                card["wrong"] = self.true_group(p) != main
            cards.append(card)
        out["listings"] = cards
        out["shown"] = len(cards)
        out["inside"] = [self._edge_row(e) for e in inside[:MAX_EDGES]]
        out["refused"] = [self._edge_row(e) for e in refused[:MAX_EDGES]]
        if main is not None:
            truth = []
            for p in self.truth[main][:MAX_LISTINGS]:
                card = self.card(p)
                card["predicted_group"] = self.group_of[p]
                card["missing"] = self.group_of[p] != g
                truth.append(card)
            out["truth"] = {"group": self.listings[self.truth[main][0]]["group"], "listings": truth}
        return out

    def histogram(self) -> dict[str, Any]:
        """Counts of edge scores in ``BINS`` bins, matched and refused apart."""
        scores = [(e.score, e.matched) for e in self.run.edges if e.score is not None]
        threshold = number(self.run.meta.get("threshold"))
        values = [s for s, _ in scores] + ([threshold] if threshold is not None else [])
        lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
        if hi - lo < 1e-9:
            lo, hi = lo - 0.5, hi + 0.5
        width = (hi - lo) / BINS
        matched, refused = [0] * BINS, [0] * BINS
        for s, m in scores:
            k = min(int((s - lo) / width), BINS - 1)
            (matched if m else refused)[k] += 1
        return {
            "lo": lo,
            "hi": hi,
            "matched": matched,
            "refused": refused,
            "threshold": threshold,
            "primary": self.run.meta.get("primary"),
        }
