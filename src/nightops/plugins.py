"""Provider plugins: find and load the cloud providers registered as entry points.

Every provider, first-party ones included, is registered under the entry-point group
``nightops.providers`` (``aws = "nightops_providers.aws:AwsProvider"``). A third party adds
one by shipping a distribution with such an entry point; its value names a callable that
takes the provider's config options as keyword arguments and returns a
:class:`~nightops_core.ports.CloudProvider`.

Listing providers reads package metadata only; a provider's module is imported when it is
loaded, and only the providers a config needs are loaded (like keyring's and fsspec's
registries). A missing SDK becomes :class:`~nightops_core.errors.ProviderUnavailable` saying
what to ``pip install``; a plugin that fails otherwise is logged and reported the same way.
"""

from __future__ import annotations

import difflib
import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points

import attrs

from nightops_core.errors import ConfigError, NightOpsError, ProviderUnavailable
from nightops_core.ports import CloudProvider

__all__ = [
    "ENTRY_POINT_GROUP",
    "FIRST_PARTY_EXTRAS",
    "ProviderInfo",
    "available_providers",
    "load_provider",
    "load_providers",
]

#: The entry-point group providers register under.
ENTRY_POINT_GROUP = "nightops.providers"
#: First-party providers and the ``nightops[…]`` extra that brings their SDK.
FIRST_PARTY_EXTRAS: Mapping[str, str] = {"aws": "aws", "gcp": "gcp", "azure": "azure"}

logger = logging.getLogger("nightops.plugins")


@attrs.frozen
class ProviderInfo:
    """A registered provider, as known from package metadata (nothing imported).

    ``value`` is the entry point's ``module:attribute``; ``distribution`` the installed
    package that registers it; ``extra`` the ``nightops`` extra a first-party provider needs.
    """

    name: str
    value: str
    distribution: str | None = None
    extra: str | None = None

    @property
    def module(self) -> str:
        """The module the provider lives in (imported only when the provider is loaded)."""
        return self.value.partition(":")[0].strip()

    @property
    def install_hint(self) -> str:
        """What to ``pip install`` for this provider's dependencies."""
        if self.extra is not None:
            return f"pip install 'nightops[{self.extra}]'"
        if self.distribution is not None:
            return f"pip install the package that provides it ({self.distribution})"
        return "pip install the package that provides it"


def available_providers() -> dict[str, ProviderInfo]:
    """The registered providers by name, sorted, without importing any of them."""
    return {name: _info(ep) for name, ep in sorted(_registered().items())}


def load_provider(name: str, options: Mapping[str, object]) -> CloudProvider:
    """Import the provider registered as ``name`` and build it with ``options`` (the
    ``[providers.<name>]`` table).

    :raises ProviderUnavailable: unknown name (the message lists the available ones), a
        missing SDK (the message says what to ``pip install``), or a plugin that fails to
        load or returns no provider (also logged as a warning on ``nightops.plugins``).
    :raises ConfigError: an option the provider does not accept, or a bad value.
    """
    return _load(name, options, _registered())


def load_providers(
    config: Mapping[str, Mapping[str, object]], needed: Iterable[str]
) -> dict[str, CloudProvider]:
    """Load every provider in ``needed`` with its options from ``config`` (the
    ``[providers]`` table: provider name -> options; a provider without a table gets none).

    Providers that are not needed are never imported, so a broken plugin nobody uses does
    no harm; a table naming a provider that is not registered is a :class:`ConfigError`.
    """
    registered = _registered()
    for name in config:
        if name not in registered:
            raise ConfigError(f"providers.{name}: {_unknown(name, registered)}")
    loaded: dict[str, CloudProvider] = {}
    for name in needed:
        if name not in loaded:
            loaded[name] = _load(name, config.get(name, {}), registered)
    return loaded


# -- internals ------------------------------------------------------------------------------


def _registered() -> dict[str, EntryPoint]:
    """Entry points of the group by name; the first one on ``sys.path`` wins a clash."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        first = found.setdefault(ep.name, ep)
        if first is not ep and first.value != ep.value:
            logger.warning(
                "provider %r is registered twice (%s and %s); using %s",
                ep.name,
                first.value,
                ep.value,
                first.value,
            )
    return found


def _info(ep: EntryPoint) -> ProviderInfo:
    dist = ep.dist.name if ep.dist is not None else None
    return ProviderInfo(ep.name, ep.value, dist, FIRST_PARTY_EXTRAS.get(ep.name))


def _unknown(name: str, registered: Mapping[str, EntryPoint]) -> str:
    names = sorted(registered)
    close = difflib.get_close_matches(name, names, n=1)
    guess = f" (did you mean {close[0]!r}?)" if close else ""
    listed = ", ".join(names) if names else "none"
    return f"unknown provider {name!r}{guess}; available: {listed}"


def _load(name: str, options: object, registered: Mapping[str, EntryPoint]) -> CloudProvider:
    ep = registered.get(name)
    if ep is None:
        raise ProviderUnavailable(_unknown(name, registered))
    if not isinstance(options, Mapping):
        raise ConfigError(f"providers.{name}: expected a table of options")
    info = _info(ep)
    try:
        factory = ep.load()
    except ImportError as exc:
        # ModuleNotFoundError included: the provider's SDK (an extra) is not installed.
        raise ProviderUnavailable(
            f"provider {name!r} needs extra packages: {info.install_hint} ({exc})"
        ) from exc
    except Exception as exc:
        raise _broken(info, "failed to load", exc) from exc
    if not callable(factory):
        raise ProviderUnavailable(
            f"provider {name!r} ({info.value}) is not a callable that builds a provider; "
            "fix or uninstall the plugin"
        )
    _check_options(name, factory, options)
    try:
        provider = factory(**options)
    except NightOpsError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"providers.{name}: {exc}") from exc
    except Exception as exc:
        raise _broken(info, "failed to start", exc) from exc
    if not isinstance(provider, CloudProvider):
        raise ProviderUnavailable(
            f"provider {name!r} ({info.value}) returned {type(provider).__name__}, "
            "not a CloudProvider; fix or uninstall the plugin"
        )
    return provider


def _broken(info: ProviderInfo, what: str, exc: Exception) -> ProviderUnavailable:
    """Log a plugin failure (exception type and message only, no traceback or locals)."""
    origin = f"{info.value} from {info.distribution}" if info.distribution else info.value
    logger.warning(
        "provider plugin %r (%s) %s: %s: %s", info.name, origin, what, type(exc).__name__, exc
    )
    return ProviderUnavailable(
        f"provider {info.name!r} ({origin}) {what}: {type(exc).__name__}: {exc}; "
        "fix or uninstall the plugin"
    )


def _check_options(
    name: str, factory: Callable[..., object], options: Mapping[str, object]
) -> None:
    """ConfigError naming an option the factory does not take, with the allowed ones."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return  # a callable without a signature: let the call itself complain
    params = signature.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    allowed = [
        p.name
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    for option in options:
        if option not in allowed:
            close = difflib.get_close_matches(str(option), allowed, n=1)
            guess = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"providers.{name}: unknown option {option!r}{guess}; "
                f"allowed: {', '.join(allowed) or 'none'}"
            )
