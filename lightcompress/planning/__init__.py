"""Deciding what to factorise: layer selection (``LayerFilter``), rank rules (``FixedRank``,
``Energy``, ``Ratio``, ``TargetParams``, ``TargetMacs``, ``TargetLatency``), budgets allocated by
error (``budget``) or by measured sensitivity (``allocate``), and the ``Plan`` they all produce
(saved and read back in ``plan``)."""

from .allocate import allocate
from .budget import ErrorAllocation
from .filters import LayerFilter
from .goal import CompressGoal
from .plan import LayerPlan, Plan, plan_from_dict, read_plan, write_plan
from .rules import (
    Energy,
    FixedRank,
    Ratio,
    TargetLatency,
    TargetMacs,
    TargetParams,
    decide,
    make_plan,
    rank_rule,
)
from .sensitivity import Sensitivity, analyse

__all__ = ["CompressGoal", "LayerFilter", "FixedRank", "Energy", "Ratio", "TargetParams", "TargetMacs", "TargetLatency",
           "rank_rule", "make_plan", "decide", "Plan", "LayerPlan", "plan_from_dict", "read_plan", "write_plan", "Sensitivity",
           "analyse", "allocate", "ErrorAllocation"]
