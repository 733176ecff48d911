"""Two-sided tabular CUSUM on standardized values, with the change point it implies.

Each side sums how far the values stray beyond `slack` reference standard deviations and
resets at zero; the frame after its last reset is the estimated onset of a shift (Page, 1954).
The state is a plain dict so the worker can keep it in a Faust table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class CusumSide:
    """One side of the CUSUM: the statistic and the raw values summed since its onset."""

    statistic: float = 0.0
    onset_sequence: int = 0
    raw_sum: float = 0.0
    raw_count: int = 0

    @property
    def onset_mean(self) -> float:
        """Mean of the raw values since the onset, or 0 before any."""
        return self.raw_sum / self.raw_count if self.raw_count else 0.0


@dataclass
class Cusum:
    """Upper and lower CUSUM of one metric."""

    up: CusumSide
    down: CusumSide

    @classmethod
    def new(cls) -> Cusum:
        return cls(CusumSide(), CusumSide())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cusum:
        return cls(CusumSide(**data["up"]), CusumSide(**data["down"]))

    def to_dict(self) -> dict[str, Any]:
        return {"up": asdict(self.up), "down": asdict(self.down)}

    def update(self, z_score: float, raw_value: float, sequence: int, slack: float) -> None:
        """Add one standardized value; `raw_value` feeds the mean reported since the onset."""
        _step(self.up, z_score - slack, raw_value, sequence)
        _step(self.down, -z_score - slack, raw_value, sequence)


def _step(side: CusumSide, increment: float, raw_value: float, sequence: int) -> None:
    if side.statistic == 0.0:
        side.onset_sequence = sequence
        side.raw_sum = 0.0
        side.raw_count = 0
    side.statistic = max(0.0, side.statistic + increment)
    if side.statistic == 0.0:
        return
    side.raw_sum += raw_value
    side.raw_count += 1
