"""The shipped on-demand price catalog: hourly USD prices of common instance types.

One TOML file per cloud beside this module (``aws.toml``, ``gcp.toml``, ``azure.toml``),
each with the date the prices were taken. Config can override any price per resource
(``hourly_price``). An unknown type is unknown — never zero.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

import attrs

from nightops_core.model import Money, Resource

__all__ = ["catalog_date", "hourly_price", "with_price"]


@cache
def _catalog(provider: str) -> dict[str, Any]:
    file = resources.files(__package__).joinpath(f"{provider}.toml")
    if not file.is_file():
        return {}
    return tomllib.loads(file.read_text(encoding="utf-8"))


def catalog_date(provider: str) -> str | None:
    """When the provider's prices were taken (``YYYY-MM-DD``), if a catalog ships."""
    date = _catalog(provider).get("taken")
    return str(date) if date else None


def hourly_price(provider: str, kind: str, size: str | None, region: str) -> Money | None:
    """Catalog price for ``size`` of ``kind`` in ``region`` (falling back to the kind's
    ``default`` region table), or None when the catalog does not know it.

    Catalog layout: ``[<kind>.<region>]`` tables mapping size -> "hourly USD" strings, e.g.
    ``[ec2.us-east-1] "t3.medium" = "0.0416"``; ``[ec2.default]`` applies to other regions.
    """
    if not size:
        return None
    tables = _catalog(provider).get(kind, {})
    for table in (tables.get(region, {}), tables.get("default", {})):
        if size in table:
            return Money(Decimal(str(table[size])))
    return None


def with_price(resource: Resource) -> Resource:
    """The resource with its catalog price filled in, unless config already set one."""
    if resource.hourly_price is not None:
        return resource
    price = hourly_price(resource.provider, resource.kind, resource.size, resource.region)
    if price is None:
        return resource
    return attrs.evolve(resource, hourly_price=price)
