"""The composition root: build a running NightOps from a Config. Nothing happens at import."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import UTC, datetime

import attrs

from nightops.config import Config
from nightops.plugins import load_providers
from nightops.pricing import PricedProvider, Pricer
from nightops.state import open_store
from nightops_core.ports import Clock, CloudProvider, IdSource, Notifier, StateStore
from nightops_core.service import Service

__all__ = ["App", "RandomIds", "SystemClock", "build"]


class SystemClock:
    """The real clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class RandomIds:
    """Short random ids (``apr-3f9c1a2b``): unguessable enough for button values, short
    enough to read out loud."""

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{secrets.token_hex(4)}"


@attrs.define
class App:
    """Everything one NightOps process runs on."""

    config: Config
    service: Service
    store: StateStore
    providers: Mapping[str, CloudProvider]
    notifier: Notifier


def build(
    config: Config,
    *,
    notifier: Notifier,
    store: StateStore | None = None,
    providers: Mapping[str, CloudProvider] | None = None,
    clock: Clock | None = None,
    ids: IdSource | None = None,
) -> App:
    """Open the state store, load the providers the collections use, wire the service."""
    pricer = Pricer(config.price_overrides)
    if providers is None:
        providers = load_providers(config.providers, config.provider_names)
    providers = {name: PricedProvider(p, pricer) for name, p in providers.items()}
    store = store if store is not None else open_store(config.state_url)
    settings = attrs.evolve(
        config.settings, collections=tuple(map(pricer.collection, config.settings.collections))
    )
    service = Service(
        settings,
        providers=providers,
        store=store,
        notifier=notifier,
        clock=clock or SystemClock(),
        ids=ids or RandomIds(),
    )
    return App(config, service, store, providers, notifier)
