"""Deterministic CPU work for GET /page: pure-Python arithmetic that a JIT can speed up."""

from __future__ import annotations

import math
from typing import Any

SAMPLES = 24
REGIONS = ("north", "south", "east", "west", "central")


def _samples(seed: int) -> list[float]:
    # A small linear congruential generator: same numbers on every interpreter and run.
    state = (seed * 2_654_435_761) & 0xFFFFFFFF
    values = []
    for _ in range(SAMPLES):
        state = (state * 1_103_515_245 + 12_345) & 0x7FFFFFFF
        values.append(10.0 + (state % 100_000) / 37.0)
    return values


def compute_rows(count: int) -> list[dict[str, Any]]:
    rows = []
    grand_total = 0.0
    for number in range(1, count + 1):
        values = _samples(number)
        total = sum(values)
        mean = total / SAMPLES
        stdev = math.sqrt(sum((v - mean) ** 2 for v in values) / SAMPLES)
        grand_total += total
        rows.append(
            {
                "number": number,
                "code": f"SKU-{number * 7919 % 100_000:05d}",
                "region": REGIONS[number % len(REGIONS)],
                "total": total,
                "mean": mean,
                "stdev": stdev,
                "low": min(values),
                "high": max(values),
                "trend": "up" if values[-1] >= values[0] else "down",
            }
        )
    for row in rows:
        row["share"] = row["total"] / grand_total if grand_total else 0.0
    return rows
