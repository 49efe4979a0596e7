"""The settings of online EM: step sizes, forgetting, averaging, burn-in.

See :mod:`streammix.algorithms.online` for what they mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["OnlineSettings", "burn_in_rows", "DEFAULT_AVERAGE_START"]

#: Averaging with ``average=True`` starts at this M-step.
DEFAULT_AVERAGE_START = 10


def burn_in_rows(n_components: int, n_coef: int) -> int:
    """Rows to see before the first M-step: max(20, 10 m (p + 1)).

    See the mathematics page (docs/mathematics.rst), §2.2.
    """
    return max(20, 10 * n_components * (n_coef + 1))


@dataclass(frozen=True)
class OnlineSettings:
    """Hyper-parameters of online EM (see the module notes).

    Parameters
    ----------
    step_alpha : float, default=0.6
        Exponent α ∈ (0.5, 1] of the step (k + k0)^(−α).
    step_offset : float, default=2.0
        Offset k0 ≥ 0 of the step.
    forget : float, optional
        Window W (in units of weight, i.e. rows) of the constant-step
        forgetting mode; None for the default decreasing step.
    average : bool or int, default=False
        Polyak–Ruppert averaging of the reported parameters: False, True
        (from the 10th M-step) or the M-step number to start at.
    burn_in : int, optional
        Rows before the first M-step; default ``burn_in_rows(m, p)``.
    history_size : int, default=1000
        Number of per-batch records kept.
    """

    step_alpha: float = 0.6
    step_offset: float = 2.0
    forget: float | None = None
    average: bool | int = False
    burn_in: int | None = None
    history_size: int = 1000

    def __post_init__(self) -> None:
        if not (0.5 < self.step_alpha <= 1.0):
            raise ValueError(f"step_alpha must be in (0.5, 1], got {self.step_alpha!r}")
        if not (self.step_offset >= 0):
            raise ValueError(f"step_offset must be >= 0, got {self.step_offset!r}")
        if self.forget is not None and not (self.forget >= 1):
            raise ValueError(f"forget (a window in rows) must be >= 1, got {self.forget!r}")
        avg = self.average
        if not isinstance(avg, (bool, int, np.integer)) or (
                not isinstance(avg, bool) and avg < 1):
            raise ValueError(f"average must be a bool or an M-step number >= 1, got {avg!r}")
        if self.burn_in is not None and self.burn_in < 0:
            raise ValueError(f"burn_in must be >= 0, got {self.burn_in!r}")
        if int(self.history_size) < 1:
            raise ValueError(f"history_size must be >= 1, got {self.history_size!r}")

    @property
    def average_start(self) -> int | None:
        """M-step number from which parameters are averaged, or None."""
        if self.average is False:
            return None
        if self.average is True:
            return DEFAULT_AVERAGE_START
        return int(self.average)
