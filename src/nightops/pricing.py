"""Prices for every resource: the config's own, else the config's per-type table, else the
shipped catalog of the resource's provider. Unknown stays unknown."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from nightops_core.model import Collection, Money, Resource, ResourceStatus, Selector
from nightops_core.ports import ActionResult, CloudProvider, ProgressCallback
from nightops_providers.prices import hourly_price

__all__ = ["PricedProvider", "Pricer"]


class Pricer:
    """Fills in ``hourly_price`` where the configuration did not set one per resource."""

    def __init__(self, overrides: Mapping[tuple[str, str, str], Money]) -> None:
        self._overrides = dict(overrides)

    def price(self, resource: Resource) -> Resource:
        if resource.hourly_price is not None:
            return resource
        price = None
        if resource.size:
            price = self._overrides.get((resource.provider, resource.kind, resource.size))
        if price is None:
            price = hourly_price(resource.provider, resource.kind, resource.size, resource.region)
        return resource if price is None else attrs.evolve(resource, hourly_price=price)

    def prices_type(self, resource: Resource) -> bool:
        """Does the config price this resource's type (so it beats a catalog price)?"""
        return (resource.provider, resource.kind, resource.size or "") in self._overrides

    def collection(self, collection: Collection) -> Collection:
        return attrs.evolve(collection, resources=tuple(map(self.price, collection.resources)))


class PricedProvider:
    """A provider whose discovered resources are priced by a :class:`Pricer` (the config's
    per-type prices win over the provider's own catalog lookup)."""

    def __init__(self, provider: CloudProvider, pricer: Pricer) -> None:
        self.name = provider.name
        self.inner = provider
        self.pricer = pricer

    def describe(self, resources: Sequence[Resource]) -> Sequence[ResourceStatus]:
        return self.inner.describe(resources)

    def start(
        self, resources: Sequence[Resource], progress: ProgressCallback | None = None
    ) -> Sequence[ActionResult]:
        return self.inner.start(resources, progress)

    def stop(
        self, resources: Sequence[Resource], progress: ProgressCallback | None = None
    ) -> Sequence[ActionResult]:
        return self.inner.stop(resources, progress)

    def discover(self, selector: Selector) -> Sequence[Resource]:
        return [
            self.pricer.price(attrs.evolve(r, hourly_price=None) if self._typed(r) else r)
            for r in self.inner.discover(selector)
        ]

    def _typed(self, resource: Resource) -> bool:
        """Does the config price this resource's type (so it beats the catalog's price)?"""
        key = (resource.provider, resource.kind, resource.size or "")
        return key in self.pricer._overrides
