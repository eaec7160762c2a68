"""Costs and savings. An unknown price stays unknown: it is never counted as zero."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal

import attrs

from nightops_core.model import Money, Resource

__all__ = ["CostEstimate", "collection_monthly", "resource_monthly", "savings"]


@attrs.frozen
class CostEstimate:
    """A sum of known amounts plus how many items had no known price."""

    known: Money
    unknown: int = 0

    @property
    def complete(self) -> bool:
        return self.unknown == 0

    @classmethod
    def nothing(cls, currency: str = "USD") -> CostEstimate:
        return cls(Money.zero(currency))

    def __add__(self, other: CostEstimate) -> CostEstimate:
        if not isinstance(other, CostEstimate):
            return NotImplemented
        return CostEstimate(self.known + other.known, self.unknown + other.unknown)

    def __str__(self) -> str:
        """``$350.36``; ``$350.36 + 1 unknown``; ``unknown`` when nothing is known."""
        if self.unknown and self.known.amount == 0:
            return "unknown"
        if self.unknown:
            return f"{self.known} + {self.unknown} unknown"
        return str(self.known)


def resource_monthly(resource: Resource) -> Money | None:
    """Monthly cost (hourly x 730) of a resource with a known hourly price, else None."""
    return None if resource.hourly_price is None else resource.hourly_price.monthly()


def collection_monthly(resources: Iterable[Resource]) -> CostEstimate:
    """Sum of the monthly costs of ``resources``."""
    total = CostEstimate.nothing()
    for resource in resources:
        monthly = resource_monthly(resource)
        total += CostEstimate(Money.zero(), 1) if monthly is None else CostEstimate(monthly)
    return total


def savings(resources: Iterable[Resource], stopped: timedelta) -> CostEstimate:
    """Money not spent by having ``resources`` stopped for ``stopped``."""
    hours = Decimal(int(stopped.total_seconds())) / Decimal(3600)
    total = CostEstimate.nothing()
    for resource in resources:
        price = resource.hourly_price
        total += CostEstimate(Money.zero(), 1) if price is None else CostEstimate(price * hours)
    return total
