"""The cold start's real fit held at a gate, so a test orders a refit and the requests
around it by state, never by the clock."""

from __future__ import annotations

import threading

import search.match.cold_start as cold_start


class Gate:
    """The real ``fit_label_models``, held until ``gate`` is set (``entered`` says a fit is
    waiting there); ``pairs`` keeps how many labelled pairs each fit was given."""

    def __init__(self, monkeypatch) -> None:
        self.real = cold_start.fit_label_models
        self.entered, self.gate, self.pairs = threading.Event(), threading.Event(), []
        monkeypatch.setattr(cold_start, "fit_label_models", self)

    def __call__(self, x, y, groups, *args, **kwargs):
        self.pairs.append(len(set(groups.tolist())))
        self.entered.set()
        assert self.gate.wait(120), "the test never opened the gate"
        return self.real(x, y, groups, *args, **kwargs)
