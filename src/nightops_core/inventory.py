"""The cached inventory of discovered resources, as JSON text for the state store."""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal

from nightops_core.model import Money, Resource

__all__ = ["inventory_from_json", "inventory_to_json"]


def inventory_to_json(resources: Iterable[Resource]) -> str:
    """Encode resources (prices as exact decimal strings)."""
    return json.dumps(
        [
            {
                "provider": r.provider,
                "kind": r.kind,
                "id": r.id,
                "name": r.name,
                "region": r.region,
                "size": r.size,
                "stage": r.stage,
                "account": r.account,
                "hourly_price": None if r.hourly_price is None else str(r.hourly_price.amount),
                "currency": None if r.hourly_price is None else r.hourly_price.currency,
                "tags": [list(t) for t in r.tags],
            }
            for r in resources
        ],
        separators=(",", ":"),
    )


def inventory_from_json(text: str) -> list[Resource]:
    """Decode what :func:`inventory_to_json` wrote."""
    return [
        Resource(
            provider=item["provider"],
            kind=item["kind"],
            id=item["id"],
            name=item["name"],
            region=item["region"],
            size=item["size"],
            stage=item["stage"],
            account=item["account"],
            hourly_price=None
            if item["hourly_price"] is None
            else Money(Decimal(item["hourly_price"]), item["currency"]),
            tags=[(k, v) for k, v in item["tags"]],
        )
        for item in json.loads(text)
    ]
