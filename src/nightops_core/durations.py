"""Durations written the way people write them: ``30m``, ``2h``, ``1h30m``, ``90s``, ``1d``."""

from __future__ import annotations

import re
from datetime import timedelta

from nightops_core.errors import NightOpsError

__all__ = ["format_duration", "parse_duration"]

_PART = re.compile(r"(\d+)\s*([dhms])", re.IGNORECASE)
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> timedelta:
    """Parse ``"30m"``, ``"2h"``, ``"1h30m"``, ``"45s"``, ``"1d"`` (units d, h, m, s).

    Raises NightOpsError with the accepted forms on anything else, including zero.
    """
    compact = text.strip().replace(" ", "")
    pos = 0
    seconds = 0
    for match in _PART.finditer(compact):
        if match.start() != pos:
            break
        seconds += int(match.group(1)) * _UNITS[match.group(2).lower()]
        pos = match.end()
    if not compact or pos != len(compact) or seconds <= 0:
        raise NightOpsError(
            f"'{text}' is not a duration: write a number and a unit, like 30m, 2h, 1h30m or 1d"
        )
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """The shortest form :func:`parse_duration` reads back: ``1h30m``."""
    seconds = int(delta.total_seconds())
    parts = []
    for unit, size in _UNITS.items():
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"
