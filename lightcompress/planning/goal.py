"""What ``compress`` aims at: one goal, a budget (convert's own budget rules) or an accuracy limit."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import OptionError
from .rules import RULES

GOALS = ("target_params", "target_macs", "target_latency", "max_drop")  # the order messages name them in


@dataclass(frozen=True)
class CompressGoal:
    """What ``compress`` aims at: exactly one of ``target_params``, ``target_macs``,
    ``target_latency`` (fractions of the model's; latency is batch-1 time measured in the
    runtime) or ``max_drop`` (accuracy points, searched). Checked once, when made; the stages
    take one and trust it.

    >>> CompressGoal(target_params=0.2).metric, CompressGoal(max_drop=0.5).metric
    ('params', None)
    """

    target_params: float | None = None
    target_macs: float | None = None
    target_latency: float | None = None
    max_drop: float | None = None

    def __post_init__(self):
        chosen = [f"{k}={v}" for k, v in self._given()]
        if len(chosen) != 1:
            got = f" (got {', '.join(chosen)})" if chosen else ""
            raise OptionError("choose exactly one goal: target_params=F, target_macs=F, target_latency=F or "
                              f"max_drop=POINTS{got}.")
        self.rule  # a budget's fraction is checked by its rule, as convert's is
        if self.max_drop is not None and not (_finite(self.max_drop) and 0 <= self.max_drop <= 100):
            raise OptionError("is invalid", option="max_drop", value=self.max_drop,
                              allowed="accuracy points in [0, 100], e.g. 0.5")

    def _given(self):
        return [(k, getattr(self, k)) for k in GOALS if getattr(self, k) is not None]

    @classmethod
    def parse(cls, goal=None, **values) -> CompressGoal:
        """``goal`` as it is, or a goal made of the keyword ``values`` (never both)."""
        given = {k: v for k, v in values.items() if v is not None}
        if goal is None:
            return cls(**given)
        if given:
            raise OptionError(f"give goal= or {', '.join(given)}, not both.")
        if not isinstance(goal, cls):
            raise OptionError("is not a CompressGoal", option="goal", value=goal,
                              allowed="CompressGoal(target_params=0.2), or target_params=0.2 itself")
        return goal

    @property
    def rule(self):
        """The budget as convert's rank rule (``TargetParams``, ``TargetMacs``, ``TargetLatency``:
        ``rules.RULES``), or None for ``max_drop`` (a search)."""
        name, value = self._given()[0]
        return None if name == "max_drop" else RULES[name](value)

    @property
    def metric(self) -> str | None:
        """"params", "macs" or "latency" for a budget; None for ``max_drop`` (a search)."""
        rule = self.rule
        return None if rule is None else rule.metric

    @property
    def target(self) -> float:
        """The budget's fraction, or the accuracy points of ``max_drop``."""
        return self._given()[0][1]



def _finite(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
