"""Value objects of the domain: collections, resources, their states, money.

Everything here is a frozen attrs class or an enum; nothing performs I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal

import attrs

__all__ = [
    "HOURS_PER_MONTH",
    "STATUS_RULES",
    "Collection",
    "CollectionStatus",
    "Money",
    "Resource",
    "ResourceKey",
    "ResourceState",
    "ResourceStatus",
    "Selector",
    "collection_status",
]

#: Hours in a billing month, as the cloud calculators use (365 * 24 / 12 = 730).
HOURS_PER_MONTH = Decimal(730)


class ResourceState(enum.Enum):
    """Observed state of one cloud resource, normalised across providers."""

    RUNNING = "running"
    STOPPED = "stopped"
    STARTING = "starting"
    STOPPING = "stopping"
    #: The cloud reports an error state (e.g. RDS ``incompatible-parameters``).
    FAILED = "failed"
    #: The resource no longer exists (terminated, deleted).
    MISSING = "missing"
    #: NightOps could not learn the state (no permission, API down).
    UNKNOWN = "unknown"

    @property
    def is_transitioning(self) -> bool:
        return self in (ResourceState.STARTING, ResourceState.STOPPING)


class CollectionStatus(enum.Enum):
    """Aggregate status of a collection, derived from its resources by :data:`STATUS_RULES`."""

    RUNNING = "running"
    STOPPED = "stopped"
    MIXED = "mixed"
    TRANSITIONING = "transitioning"
    UNKNOWN = "unknown"

    @property
    def emoji(self) -> str:
        return _STATUS_EMOJI[self]


_STATUS_EMOJI = {
    CollectionStatus.RUNNING: "🟢",
    CollectionStatus.STOPPED: "🔴",
    CollectionStatus.MIXED: "🟡",
    CollectionStatus.TRANSITIONING: "🔄",
    CollectionStatus.UNKNOWN: "⚪",
}

_S = ResourceState

#: The collection status rule as data: the first row whose predicate holds for the set of
#: resource states wins. An empty collection is UNKNOWN (nothing to show as running).
STATUS_RULES: tuple[tuple[str, CollectionStatus], ...] = (
    ("no resources", CollectionStatus.UNKNOWN),
    ("any resource starting or stopping", CollectionStatus.TRANSITIONING),
    ("every resource running", CollectionStatus.RUNNING),
    ("every resource stopped", CollectionStatus.STOPPED),
    ("any resource unknown and none running or stopped", CollectionStatus.UNKNOWN),
    ("otherwise (running beside stopped, failed or missing)", CollectionStatus.MIXED),
)


def collection_status(states: Iterable[ResourceState]) -> CollectionStatus:
    """Apply :data:`STATUS_RULES` to the states of a collection's resources."""
    present = set(states)
    if not present:
        return CollectionStatus.UNKNOWN
    if any(s.is_transitioning for s in present):
        return CollectionStatus.TRANSITIONING
    if present == {_S.RUNNING}:
        return CollectionStatus.RUNNING
    if present == {_S.STOPPED}:
        return CollectionStatus.STOPPED
    if _S.UNKNOWN in present and not present & {_S.RUNNING, _S.STOPPED}:
        return CollectionStatus.UNKNOWN
    return CollectionStatus.MIXED


@attrs.frozen(order=True)
class Money:
    """An amount of money. Decimal, never float; shown rounded to cents."""

    amount: Decimal = attrs.field(converter=Decimal)
    currency: str = "USD"

    def __add__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        if other.currency != self.currency:
            raise ValueError(f"cannot add {other.currency} to {self.currency}")
        return Money(self.amount + other.amount, self.currency)

    def __mul__(self, factor: Decimal | int) -> Money:
        return Money(self.amount * Decimal(factor), self.currency)

    @classmethod
    def zero(cls, currency: str = "USD") -> Money:
        return cls(Decimal(0), currency)

    def monthly(self) -> Money:
        """Treat ``self`` as an hourly price and return the monthly one (x 730)."""
        return self * HOURS_PER_MONTH

    def __str__(self) -> str:
        cents = self.amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        sign = "-" if cents < 0 else ""
        text = f"{abs(cents):,.2f}"
        if self.currency == "USD":
            return f"{sign}${text}"
        return f"{sign}{text} {self.currency}"


@attrs.frozen(order=True)
class ResourceKey:
    """Identity of a resource across NightOps: provider, kind, location and cloud id."""

    provider: str
    kind: str
    region: str
    id: str

    def __str__(self) -> str:
        return f"{self.provider}:{self.kind}:{self.region}:{self.id}"


def _tags(value: Mapping[str, str] | Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    items = value.items() if isinstance(value, Mapping) else value
    return tuple(sorted((str(k), str(v)) for k, v in items))


@attrs.frozen
class Resource:
    """One cloud resource that belongs to a collection.

    ``region`` is the region or zone (GCP instances live in a zone), ``size`` the instance
    type / class / machine type used for pricing, ``stage`` the start order (lower first;
    stop runs in reverse), ``account`` the cloud account / project / subscription when a
    collection spans several. ``hourly_price`` overrides the price catalog.
    """

    provider: str
    kind: str
    id: str
    name: str = attrs.field(default="")
    region: str = ""
    size: str | None = None
    stage: int = 0
    account: str | None = None
    hourly_price: Money | None = None
    tags: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_tags)

    @property
    def key(self) -> ResourceKey:
        return ResourceKey(self.provider, self.kind, self.region, self.id)

    @property
    def label(self) -> str:
        """The name people know it by: the display name, else the cloud id."""
        return self.name or self.id


@attrs.frozen
class ResourceStatus:
    """What a provider observed about one resource at one time."""

    resource: Resource
    state: ResourceState
    detail: str = ""


def _strs(values: Iterable[str]) -> tuple[str, ...]:
    return (values,) if isinstance(values, str) else tuple(values)


def _resources(values: Iterable[Resource]) -> tuple[Resource, ...]:
    return tuple(values)


def _selectors(values: Iterable[Selector]) -> tuple[Selector, ...]:
    return tuple(values)


@attrs.frozen
class Selector:
    """Discover a collection's members by tags/labels in some regions of one provider."""

    provider: str
    regions: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    tags: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_tags)
    kinds: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    account: str | None = None


@attrs.frozen
class Collection:
    """A named group of resources that NightOps starts and stops as one.

    ``confirm_start`` / ``confirm_stop`` choose whether the command asks for confirmation
    (stop does by default, start does not). ``schedule`` names a schedule in the config;
    ``None`` means manual only.
    """

    id: str
    name: str = attrs.field(default="")
    env: str = ""
    resources: tuple[Resource, ...] = attrs.field(default=(), converter=_resources)
    selectors: tuple[Selector, ...] = attrs.field(default=(), converter=_selectors)
    schedule: str | None = None
    slack_channel: str | None = None
    confirm_start: bool = False
    confirm_stop: bool = True
    description: str = ""

    @property
    def display_name(self) -> str:
        return self.name or self.id
