"""Which layers are factorised, and in which modes: the layer selection, kept apart from the
rank rule (how much each chosen layer keeps) and from the budget."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from ..validation import whole as check_whole
from ..defaults import CONV_MODE_CHOICES, DEFAULT_CONV_MODE, DEFAULT_MIN_PARAMS, DEFAULT_MIN_SAVING, NO_DATA_ENERGY_FLOOR
from ..errors import OptionError


@dataclass(frozen=True)
class LayerFilter:
    """Layers to consider: names matching ``include`` (all when empty) and none of ``exclude``
    (fnmatch globs on layer paths like ``block/dense``), with at least ``min_params``
    parameters. ``conv_mode``: one of ``CONV_MODE_CHOICES`` ("channel", "spatial", "tucker", or
    "auto": every mode of the layer type). ``min_saving``: a layer is factorised only at ranks that save at least this fraction of
    its kernel's weights (no plan spends accuracy on a layer for a few percent of its size).
    ``no_data_floor``: planned without labelled data, a budget takes no layer below this fraction of
    its energy: spectral on weight errors alone, of its outputs on calibration inputs (0: no floor;
    see ``defaults.NO_DATA_ENERGY_FLOOR``).

    >>> LayerFilter(include=("dense*",)).reason_for_name("conv2d")
    'not matched by include'
    """

    include: tuple = ()
    exclude: tuple = ()
    min_params: int = DEFAULT_MIN_PARAMS
    conv_mode: str = DEFAULT_CONV_MODE
    min_saving: float = DEFAULT_MIN_SAVING
    no_data_floor: float = NO_DATA_ENERGY_FLOOR

    def __post_init__(self):
        object.__setattr__(self, "include", tuple(self.include))
        object.__setattr__(self, "exclude", tuple(self.exclude))
        if self.conv_mode not in CONV_MODE_CHOICES:
            raise OptionError("is unknown", option="conv_mode", value=self.conv_mode,
                              allowed=f"one of {', '.join(CONV_MODE_CHOICES)}")
        check_whole("min_params", self.min_params)
        ok = isinstance(self.min_saving, (int, float)) and not isinstance(self.min_saving, bool)
        if not ok or not 0 <= self.min_saving < 1:
            raise OptionError("is invalid", option="min_saving", value=self.min_saving,
                              allowed="a fraction in [0, 1), e.g. 0.2")
        ok = isinstance(self.no_data_floor, (int, float)) and not isinstance(self.no_data_floor, bool)
        if not ok or not 0 <= self.no_data_floor < 1:
            raise OptionError("is invalid", option="no_data_floor", value=self.no_data_floor,
                              allowed=f"a fraction of the energy in [0, 1), e.g. {NO_DATA_ENERGY_FLOOR}, or 0 for none")

    def reason_for_name(self, name) -> str | None:
        if self.include and not any(fnmatch.fnmatchcase(name, p) for p in self.include):
            return "not matched by include"
        matched = [p for p in self.exclude if fnmatch.fnmatchcase(name, p)]
        if matched:
            return f"excluded by exclude {matched[0]!r}"
        return None

    def reason(self, c) -> str | None:
        """Why candidate ``c`` (see ``analyze.Candidate``) is left alone, or None to factorise it."""
        if c.unsupported:
            return f"unsupported: {c.unsupported}"
        by_name = self.reason_for_name(c.name)
        if by_name:
            return by_name
        if c.params < self.min_params:
            return f"{c.params} params, below min_params={self.min_params}"
        if all(c.rank_limit(m, self.min_saving) == 0 for m in self.modes(c)):
            if all(c.rank_limit(m) == 0 for m in self.modes(c)):
                return f"no rank saves parameters for a kernel of shape {c.kernel_shape}"
            return (f"no rank saves min_saving={self.min_saving:g} of its {c.size} kernel weights "
                    f"(shape {c.kernel_shape})")
        return None

    def limit(self, c, mode) -> int:
        """Largest rank of ``mode`` for candidate ``c`` that saves ``min_saving`` (0: none)."""
        return c.rank_limit(mode, self.min_saving)

    def modes(self, c) -> tuple:
        """The modes to consider for candidate ``c``: all of its type's with "auto"."""
        if len(c.modes) == 1 or self.conv_mode == "auto":
            return c.modes
        return (self.conv_mode,) if self.conv_mode in c.modes else c.modes[:1]

    def chosen(self, found) -> tuple[list, dict]:
        """(candidates to factorise, {name: reason} for the others). Patterns in ``include`` that
        match no layer are refused, with the layer names."""
        for pattern in self.include:
            if not any(fnmatch.fnmatchcase(c.name, pattern) for c in found):
                names = ", ".join(c.name for c in found) or "none"
                raise OptionError(f"matches no factorisable layer (they are: {names})", option="include",
                                  value=pattern, allowed="one of those names or a glob matching some")
        named = [c for c in found if not (self.include and not any(fnmatch.fnmatchcase(c.name, p)
                                                                     for p in self.include))]
        if self.exclude and named and all(self.reason_for_name(c.name) for c in named):
            patterns = ",".join(self.exclude)
            if self.include:
                raise OptionError(f"exclude={patterns} removes every layer that include={','.join(self.include)} "
                                  f"matches ({', '.join(c.name for c in named)}), so nothing is left to factorise; "
                                  f"narrow the exclude patterns or widen the include ones.")
            raise OptionError(f"exclude={patterns} removes every factorisable layer "
                              f"({', '.join(c.name for c in named)}), so nothing is left to factorise; narrow it.")
        reasons = {c.name: self.reason(c) for c in found}
        return [c for c in found if reasons[c.name] is None], {k: v for k, v in reasons.items() if v}
