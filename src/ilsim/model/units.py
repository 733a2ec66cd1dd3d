"""Time units: one table for every place that converts a duration (half-lives, CTCAE durations)."""

from __future__ import annotations

HOURS = {
    "minute": 1 / 60, "minutes": 1 / 60, "min": 1 / 60,
    "hour": 1.0, "hours": 1.0, "h": 1.0, "hr": 1.0,
    "day": 24.0, "days": 24.0, "d": 24.0,
    "week": 168.0, "weeks": 168.0,
}


def hours_per(time_units: str) -> float | None:
    """Hours in one unit of ``time_units`` ('hour', 'days', 'min', ...), or None if unknown."""
    return HOURS.get(str(time_units).strip().lower())
