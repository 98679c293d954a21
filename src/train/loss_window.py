"""Host-side bookkeeping of the step loop: losses fetched in windows, step time and ETA.

The step cell returns its losses as device tensors.  Converting one to a
number waits for the device, so the loop keeps them and fetches a whole
window at once, on logging steps only: one wait per ``train.log_every``
steps instead of one per step.  The non-finite check still looks at every
step's loss (or every sink's last loss) and names the first bad one.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence, Tuple

from src.progress import eta_text


@dataclass
class StepLosses:
    """The losses of the last step of a chunk of ``steps`` steps ending at global ``step``."""

    step: int
    steps: int
    total: float
    main: float
    aux: float

    def finite(self) -> bool:
        """True when all three losses are finite numbers."""
        return all(math.isfinite(v) for v in (self.total, self.main, self.aux))

    def where(self) -> str:
        """``step S`` or, for a chunk run on the device in one call, ``steps A-B (one sink of N)``."""
        if self.steps == 1:
            return f"step {self.step}"
        return f"steps {self.step - self.steps + 1}-{self.step} (one sink of {self.steps})"


def _number(value: Any) -> float:
    return float(value.asnumpy().reshape(-1)[0]) if hasattr(value, "asnumpy") else float(value)


@dataclass
class LossWindow:
    """Loss tensors of the chunks run since the last fetch, still on the device."""

    pending: List[Tuple[int, int, Sequence[Any]]] = field(default_factory=list)

    def add(self, step: int, steps: int, losses: Sequence[Any]) -> None:
        """Keep ``(total, main, aux)`` of the chunk of ``steps`` steps that ended at ``step`` (no host copy)."""
        self.pending.append((step, steps, losses))

    @property
    def steps(self) -> int:
        """Steps held in the window."""
        return sum(n for _, n, _ in self.pending)

    def fetch(self) -> List[StepLosses]:
        """The held losses as numbers (one wait for the device), oldest first; the window is emptied."""
        rows = [StepLosses(step, n, *(_number(v) for v in losses)) for step, n, losses in self.pending]
        self.pending = []
        return rows


def first_non_finite(rows: Sequence[StepLosses]) -> Optional[StepLosses]:
    """The first row with a non-finite loss, or None."""
    return next((r for r in rows if not r.finite()), None)


@dataclass
class Clock:
    """Seconds per step over the last window, and the time left for the run."""

    start: float
    start_step: int
    planned: int
    lap_start: float = 0.0

    def __post_init__(self) -> None:
        self.lap_start = self.start

    def lap(self, steps: int, now: Optional[float] = None) -> float:
        """Seconds per step over the ``steps`` steps since the previous lap."""
        now = time.perf_counter() if now is None else now
        per_step = (now - self.lap_start) / max(steps, 1)
        self.lap_start = now
        return per_step

    def restart_lap(self, now: Optional[float] = None) -> None:
        """Start the next lap now (after an evaluation or a save, which are not step time)."""
        self.lap_start = time.perf_counter() if now is None else now

    def eta(self, step: int, now: Optional[float] = None) -> str:
        """``HH:MM:SS`` left until step ``planned`` at this run's average speed."""
        now = time.perf_counter() if now is None else now
        return eta_text(now - self.start, step - self.start_step, self.planned - step)
