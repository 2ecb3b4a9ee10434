"""The dashboard's market picture: the member's listings by status and by price.

Plain numbers for a server-side SVG (``templates/_market.html``): no JavaScript, no chart
library, and the same figures are in the SVG's text for screen readers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

STATUS_ORDER = ("Active", "Pending", "Closed")


@dataclass(frozen=True)
class Bar:
    """One bar: its label, its count and its share of the tallest bar (0..1)."""

    label: str
    count: int
    share: float


@dataclass(frozen=True)
class Picture:
    """What the dashboard draws: listings by status, and a price histogram."""

    total: int
    shown: int
    statuses: list[Bar]
    prices: list[Bar]


def picture(listings: list[dict[str, Any]], total: int | None = None) -> Picture | None:
    """The picture of ``listings`` (Spark ``StandardFields``); None when there are none."""
    if not listings:
        return None
    counts = dict.fromkeys(STATUS_ORDER, 0)
    for fields in listings:
        status = str(fields.get("MlsStatus") or "Other")
        counts[status] = counts.get(status, 0) + 1
    prices = [float(f["ListPrice"]) for f in listings if f.get("ListPrice")]
    return Picture(
        total=max(total or 0, len(listings)),
        shown=len(listings),
        statuses=_bars(list(counts.items())),
        prices=_bars(_histogram(prices)),
    )


def _bars(pairs: list[tuple[str, int]]) -> list[Bar]:
    tallest = max((n for _, n in pairs), default=0) or 1
    return [Bar(label, n, n / tallest) for label, n in pairs]


def _histogram(prices: list[float], buckets: int = 5) -> list[tuple[str, int]]:
    """Counts in ``buckets`` equal price ranges on round numbers (``$100k-$200k``...)."""
    if not prices:
        return []
    step = _round_step((max(prices) - min(prices)) / buckets or max(prices))
    start = math.floor(min(prices) / step) * step
    count = max(1, min(buckets + 1, math.floor((max(prices) - start) / step) + 1))
    bins = [0] * count
    for price in prices:
        bins[min(int((price - start) // step), count - 1)] += 1
    return [(_range(start + i * step, start + (i + 1) * step), n) for i, n in enumerate(bins)]


def _range(low: float, high: float) -> str:
    """``Under $200k`` for the first bucket from zero, else ``$200k-$400k`` (an en dash)."""
    if low <= 0:
        return f"Under {_short(high)}"
    return f"{_short(low)}\N{EN DASH}{_short(high)}"


def _round_step(raw: float) -> float:
    """The next "nice" step at or above ``raw``: 1, 2 or 5 times a power of ten."""
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _short(value: float) -> str:
    """``$250k``, ``$1.2M``."""
    if value >= 1_000_000:
        return f"${value / 1_000_000:g}M"
    return f"${value / 1000:g}k"
