"""Azure: virtual machines (kind ``vm``) and virtual machine scale sets (kind ``vmss``),
through azure-mgmt-compute, with credentials from azure-identity.

Identity of a resource: ``Resource.account`` is the subscription id (default: the
``subscription_id`` option), ``Resource.region`` the location, and ``Resource.id`` one of

* the full ARM id ``/subscriptions/S/resourceGroups/RG/providers/Microsoft.Compute/
  virtualMachines/NAME`` (the subscription in it wins);
* ``resourceGroups/RG/NAME`` (what discovery returns) or ``RG/NAME``;
* ``NAME``, with the resource group in the resource's tag ``resource_group`` or the
  provider option ``resource_group``.

**Stop means deallocate.** A VM that is "stopped" (powered off, still allocated) is still
billed for its compute: :meth:`AzureProvider.describe` shows it RUNNING with a detail saying
so, stop deallocates it, and start starts it. NightOps never calls ``powerOff``.

Starts and deallocations are ARM long-running operations (202 + ``Azure-AsyncOperation`` /
``Location``), awaited with the SDK's poller every ``polling_interval`` seconds; then the
power state (``instanceView`` statuses ``PowerState/…``) is verified until
``timeout_seconds``. The SDK's own retries are off (``retry_total=0``): throttling (429 +
Retry-After) and 5xx are retried here with bounded exponential backoff and jitter.

No client or credential exists until the first call; clients (one per subscription) are
created once and reused.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, Final, Literal, TypeVar

import attrs
import requests
from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.transport import RequestsTransport
from azure.core.polling import LROPoller
from azure.identity import DefaultAzureCredential
from azure.mgmt.compute import ComputeManagementClient
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from nightops_core.errors import ProviderError
from nightops_core.model import Resource, ResourceState, ResourceStatus, Selector
from nightops_core.ports import ActionResult, ErrorKind, ProgressCallback, ResultKind
from nightops_providers import prices
from nightops_providers._common import (
    DEFAULT_MAX_IN_FLIGHT,
    Failure,
    Throttled,
    Transient,
    check_number,
    drive_all,
    fan_out,
    retry_after_seconds,
    retry_throttled,
)

__all__ = ["BILLED_DETAIL", "KINDS", "RESOURCE_GROUP_TAG", "AzureProvider"]

logger = logging.getLogger("nightops.providers.azure")

T = TypeVar("T")
Verb = Literal["start", "stop"]

#: The resource kinds this provider handles.
KINDS: Final = ("vm", "vmss")
#: Resource tag naming the resource group of a resource given by name only.
RESOURCE_GROUP_TAG: Final = "resource_group"
#: The detail of a VM that is stopped but still allocated (and billed).
BILLED_DETAIL: Final = "stopped but still allocated: still billed; NightOps will deallocate it"

_ROLE_HINT: Final = "grant it to the NightOps identity (see docs/azure-role.json)"
_CREDENTIAL_HINT: Final = (
    "sign in with 'az login', set AZURE_CLIENT_ID / AZURE_TENANT_ID / AZURE_CLIENT_SECRET, "
    "or give NightOps a managed identity (see docs/providers-azure.md)"
)

_RUNNING = ResourceState.RUNNING
_STOPPED = ResourceState.STOPPED

#: ``PowerState/<code>`` -> NightOps state. "stopped" is allocated, hence billed: RUNNING.
_POWER_STATES: Final[Mapping[str, ResourceState]] = {
    "running": ResourceState.RUNNING,
    "starting": ResourceState.STARTING,
    "stopping": ResourceState.STOPPING,
    "deallocating": ResourceState.STOPPING,
    "deallocated": ResourceState.STOPPED,
    "stopped": ResourceState.RUNNING,
    "mixed": ResourceState.RUNNING,
    "empty": ResourceState.STOPPED,
}
_TRANSITIONING: Final = frozenset({"starting", "stopping", "deallocating"})
_GOAL: Final[Mapping[str, str]] = {"start": "running", "stop": "deallocated"}

_CAPACITY_CODES: Final = frozenset(
    {
        "AllocationFailed",
        "ZonalAllocationFailed",
        "OverconstrainedAllocationRequest",
        "OverconstrainedZonalAllocationRequest",
        "SkuNotAvailable",
        "QuotaExceeded",
        "OperationNotAllowed",  # as ARM reports core-quota excess on start
    }
)
_WRONG_STATE_CODES: Final = frozenset({"Conflict", "OperationPreempted", "InvalidOperation"})


@attrs.frozen
class _Target:
    resource: Resource
    kind: str
    subscription: str
    group: str
    name: str

    @property
    def path(self) -> str:
        noun = "virtualMachines" if self.kind == "vm" else "virtualMachineScaleSets"
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.group}"
            f"/providers/Microsoft.Compute/{noun}/{self.name}"
        )

    @property
    def who(self) -> str:
        what = "VM" if self.kind == "vm" else "scale set"
        return f"{what} {self.name} (resource group {self.group})"

    def action(self, verb: str) -> str:
        noun = "virtualMachines" if self.kind == "vm" else "virtualMachineScaleSets"
        return f"Microsoft.Compute/{noun}/{verb}"


def _text(value: object) -> str:
    """An SDK enum member's value, or the string itself."""
    return str(getattr(value, "value", value) or "")


def _location(value: str) -> str:
    return value.replace(" ", "").lower()


def _group_of(arm_id: str) -> str:
    parts = arm_id.strip("/").split("/")
    for index, part in enumerate(parts[:-1]):
        if part.lower() == "resourcegroups":
            return parts[index + 1]
    return ""


def _error_code(exc: HttpResponseError) -> str:
    error = exc.error
    return str(error.code) if error is not None and error.code else ""


class AzureProvider:
    """Azure Compute implementing :class:`~nightops_core.ports.CloudProvider`.

    All options are keyword-only; the host passes the ``[providers.azure]`` table.

    :param subscription_id: default subscription of resources without ``account``.
    :param subscriptions: subscriptions discovery searches when a selector names none
        (default: ``subscription_id``).
    :param resource_group: default resource group of resources given by name only.
    :param resource_groups: limit discovery to these resource groups (default: all).
    :param credential: an azure-core ``TokenCredential``; default ``DefaultAzureCredential``.
    :param base_url: ARM endpoint (sovereign clouds, Azure Stack, a local stand-in).
    :param connection_verify: TLS verification: true, false, or a CA bundle path.
    :param polling_interval: seconds between LRO polls (the SDK's default is 30).
    :param timeout_seconds: how long a start/deallocate may take per resource (``TIMEOUT``).
    :param poll_seconds: pause between power-state checks while verifying the final state.
    :param max_in_flight: resources acted on at the same time.
    :param max_attempts: attempts of a throttled (or 5xx) call before giving up.
    :param backoff_seconds: first backoff pause (doubles per attempt, capped at 20 s, full jitter).
    :param clock: monotonic seconds (tests); :param sleep: pauses (tests).
    """

    def __init__(
        self,
        *,
        name: str = "azure",
        subscription_id: str | None = None,
        subscriptions: Sequence[str] = (),
        resource_group: str | None = None,
        resource_groups: Sequence[str] = (),
        credential: TokenCredential | None = None,
        base_url: str | None = None,
        connection_verify: bool | str = True,
        polling_interval: float = 5.0,
        timeout_seconds: float = 900.0,
        poll_seconds: float = 5.0,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        max_attempts: int = 6,
        backoff_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        check_number("polling_interval", polling_interval, minimum=0)
        check_number("timeout_seconds", timeout_seconds, minimum=0)
        check_number("poll_seconds", poll_seconds, minimum=0)
        check_number("backoff_seconds", backoff_seconds, minimum=0)
        check_number("max_in_flight", max_in_flight, minimum=1, integer=True)
        check_number("max_attempts", max_attempts, minimum=1, integer=True)
        if isinstance(subscriptions, str) or isinstance(resource_groups, str):
            raise TypeError("subscriptions and resource_groups must be lists of names")
        self.name = name
        self._subscription = subscription_id
        self._subscriptions = tuple(subscriptions)
        self._group = resource_group
        self._groups = {g.lower() for g in resource_groups}
        self._credential = credential
        self._base_url = base_url
        self._verify = connection_verify
        self._polling_interval = float(polling_interval)
        self._timeout = float(timeout_seconds)
        self._poll = float(poll_seconds)
        self._max_in_flight = max_in_flight
        self._max_attempts = max_attempts
        self._backoff = float(backoff_seconds)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._clients: dict[str, ComputeManagementClient] = {}

    # -- the CloudProvider protocol ---------------------------------------------------------

    def describe(self, resources: Sequence[Resource]) -> Sequence[ResourceStatus]:
        """Current state of each resource, in input order (one GET each, concurrently).

        A VM stopped but still allocated is RUNNING with :data:`BILLED_DETAIL`."""
        return fan_out(list(resources), self._describe_one, self._max_in_flight)

    def start(
        self, resources: Sequence[Resource], progress: ProgressCallback | None = None
    ) -> Sequence[ActionResult]:
        """Start each VM / scale set concurrently, await the LRO, verify it runs."""
        return self._act("start", resources, progress)

    def stop(
        self, resources: Sequence[Resource], progress: ProgressCallback | None = None
    ) -> Sequence[ActionResult]:
        """Deallocate each VM / scale set concurrently (never just power off), await the
        LRO, verify it is deallocated."""
        return self._act("stop", resources, progress)

    def discover(self, selector: Selector) -> Sequence[Resource]:
        """VMs and scale sets whose tags include the selector's, in its locations (all when
        it names none), across its subscription (or the ``subscriptions`` option), in the
        ``resource_groups`` option's groups if set. Tag names match case-insensitively."""
        kinds = selector.kinds or KINDS
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise ProviderError(
                f"{self.name}: unknown kind {unknown[0]!r} in a selector; use {' or '.join(KINDS)}"
            )
        if selector.account:
            subscriptions: tuple[str, ...] = (selector.account,)
        else:
            subscriptions = self._subscriptions or (
                (self._subscription,) if self._subscription else ()
            )
        if not subscriptions:
            raise ProviderError(
                f"{self.name}: no subscription to search; set 'subscription_id' (or "
                f"'subscriptions') in [providers.{self.name}], or the selector's account"
            )
        found: list[Resource] = []
        try:
            for subscription in subscriptions:
                if "vm" in kinds:
                    found += self._discover_vms(subscription, selector)
                if "vmss" in kinds:
                    found += self._discover_scale_sets(subscription, selector)
        except Failure as failure:
            raise ProviderError(f"{self.name}: discovery failed: {failure.message}") from None
        return found

    def close(self) -> None:
        """Close the clients' HTTP sessions (they are recreated on next use)."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    # -- clients ------------------------------------------------------------------------------

    def _client(self, subscription: str) -> ComputeManagementClient:
        with self._lock:
            client = self._clients.get(subscription)
            if client is None:
                if self._credential is None:
                    # Builds the chain only; nothing is contacted until a token is needed.
                    self._credential = DefaultAzureCredential()
                # One session per client with a connection pool as large as the fan-out
                # (requests' default of 10 would drop and reopen connections).
                session = requests.Session()
                adapter = HTTPAdapter(
                    pool_maxsize=max(10, self._max_in_flight),
                    max_retries=Retry(total=False, redirect=False, raise_on_status=False),
                )
                for scheme in ("https://", "http://"):
                    session.mount(scheme, adapter)
                options: dict[str, Any] = {
                    "transport": RequestsTransport(
                        session=session, session_owner=True, connection_verify=self._verify
                    ),
                    "connection_verify": self._verify,
                    "polling_interval": self._polling_interval,
                    "retry_total": 0,  # our retry_throttled does the retrying
                }
                if self._base_url:
                    options["base_url"] = self._base_url
                client = ComputeManagementClient(self._credential, subscription, **options)
                self._clients[subscription] = client
            return client

    # -- calls ----------------------------------------------------------------------------------

    def _call(self, call: Callable[[], T], action: str, path: str) -> T:
        """One ARM call, retried while throttled or failing transiently; errors translated."""

        def attempt() -> T:
            try:
                return call()
            except Exception as exc:  # translated right here, at the SDK boundary
                raise self._translate(exc, action, path) from exc

        try:
            return retry_throttled(
                attempt,
                attempts=self._max_attempts,
                base_seconds=self._backoff,
                sleep=self._sleep,
            )
        except Transient as exc:
            raise Failure(
                ErrorKind.OTHER,
                f"Azure kept failing on {path} ({exc}) after {self._max_attempts} attempts; "
                "try again later (https://azure.status.microsoft)",
            ) from None
        except Throttled:
            raise Failure(
                ErrorKind.THROTTLED,
                f"Azure Resource Manager still throttled requests for {path} after "
                f"{self._max_attempts} attempts; try again in a minute or lower max_in_flight",
            ) from None

    def _translate(self, exc: Exception, action: str, path: str) -> Exception:
        if isinstance(exc, ClientAuthenticationError) and exc.status_code in (None, 401):
            return Failure(
                ErrorKind.PERMISSION_DENIED,
                f"Azure credentials failed ({exc.message}); {_CREDENTIAL_HINT}",
            )
        if isinstance(exc, HttpResponseError):
            status = exc.status_code or 0
            code = _error_code(exc)
            said = f"{code}: {exc.reason or ''}".strip(": ") if code else str(exc.reason or "")
            if status == 429:
                return Throttled(f"429 {said}", retry_after_seconds(exc.response))
            if status == 403 or code in ("AuthorizationFailed", "LinkedAuthorizationFailed"):
                return Failure(
                    ErrorKind.PERMISSION_DENIED,
                    f"missing permission {action} on {path}; {_ROLE_HINT}",
                )
            if status == 404 or isinstance(exc, ResourceNotFoundError):
                return Failure(
                    ErrorKind.NOT_FOUND,
                    f"{path} does not exist; remove it from the collection or fix its "
                    "subscription/resource group",
                    ResourceState.MISSING,
                )
            if code in _CAPACITY_CODES:
                return Failure(
                    ErrorKind.CAPACITY,
                    f"Azure has no capacity or quota for {path} ({code}: {exc.message}); try "
                    "later, another size or region, or ask for more quota",
                )
            if status == 409 or code in _WRONG_STATE_CODES:
                return Failure(
                    ErrorKind.WRONG_STATE,
                    f"{path} is busy or in a state that does not allow this ({said}); "
                    "try again when its current operation has finished",
                )
            if status >= 500:
                return Transient(f"{status} {said}", retry_after_seconds(exc.response))
            return Failure(ErrorKind.OTHER, f"Azure refused a call on {path}: {exc.message}")
        if isinstance(exc, ServiceRequestError | ServiceResponseError):
            return Transient(f"cannot reach Azure Resource Manager: {type(exc).__name__}")
        return exc

    # -- targets and states -----------------------------------------------------------------------

    def _target(self, resource: Resource) -> _Target:
        if resource.kind not in KINDS:
            raise Failure(
                ErrorKind.UNSUPPORTED,
                f"{self.name}: kind {resource.kind!r} of {resource.label} is not supported; "
                f"use {' or '.join(KINDS)}",
            )
        subscription = resource.account or self._subscription
        parts = [p for p in resource.id.strip().split("/") if p]
        group: str | None = None
        if resource.id.startswith("/subscriptions/") and len(parts) >= 8:
            subscription, group, name = parts[1], _group_of(resource.id), parts[-1]
        elif len(parts) == 3 and parts[0].lower() == "resourcegroups":
            group, name = parts[1], parts[2]
        elif len(parts) == 2:
            group, name = parts
        elif len(parts) == 1:
            name = parts[0]
            group = dict(resource.tags).get(RESOURCE_GROUP_TAG) or self._group
        else:
            name = ""
        if not name or not group:
            raise Failure(
                ErrorKind.UNSUPPORTED,
                f"{self.name}: cannot tell the resource group of {resource.label}; give its id "
                f"as resourceGroups/<group>/<name> (or the full ARM id), or set the tag "
                f"{RESOURCE_GROUP_TAG}",
            )
        if not subscription:
            raise Failure(
                ErrorKind.UNSUPPORTED,
                f"{self.name}: no subscription for {resource.label}; set 'subscription_id' in "
                f"[providers.{self.name}] or the resource's account",
            )
        return _Target(resource, resource.kind, subscription, group, name)

    def _power(self, target: _Target) -> str:
        """The power code (``running``, ``deallocated``, ``stopped``, …) of a VM, or a
        summary of a scale set's instances (``mixed``, ``empty`` beside those)."""
        client = self._client(target.subscription)
        if target.kind == "vm":
            vm = self._call(
                lambda: client.virtual_machines.get(
                    target.group, target.name, expand="instanceView"
                ),
                target.action("read"),
                target.path,
            )
            view = vm.properties.instance_view if vm.properties else None
            codes = [_text(s.code) for s in (view.statuses or [])] if view else []
            powers = [c.split("/", 1)[1] for c in codes if c.startswith("PowerState/")]
            if powers:
                return powers[0]
            if any(c == "ProvisioningState/failed" for c in codes):
                return "failed"
            return "unknown"
        scale_set = self._call(
            lambda: client.virtual_machine_scale_sets.get_instance_view(target.group, target.name),
            target.action("instanceView/read"),
            target.path,
        )
        counts: dict[str, int] = {}
        summary = scale_set.virtual_machine.statuses_summary if scale_set.virtual_machine else None
        for item in summary or []:
            code = _text(item.code)
            if code.startswith("PowerState/"):
                key = code.split("/", 1)[1]
                counts[key] = counts.get(key, 0) + int(item.count or 0)
        present = {k for k, n in counts.items() if n > 0}
        for moving in ("starting", "deallocating", "stopping"):
            if moving in present:
                return moving
        if not present:
            return "empty"
        if "stopped" in present:
            return "stopped"
        if len(present) == 1:
            return present.pop()
        return "mixed"

    @staticmethod
    def _state(power: str, kind: str) -> tuple[ResourceState, str]:
        state = _POWER_STATES.get(power)
        if state is None:
            return (
                (ResourceState.FAILED, "provisioning failed; check it in the Azure portal")
                if power == "failed"
                else (ResourceState.UNKNOWN, f"power state {power}")
            )
        if power == "stopped":
            detail = BILLED_DETAIL if kind == "vm" else f"instances {BILLED_DETAIL}"
            return state, detail
        if power == "mixed":
            return state, "some instances running, some deallocated"
        if power == "empty":
            return state, "no instances"
        return state, ""

    def _describe_one(self, resource: Resource) -> ResourceStatus:
        try:
            target = self._target(resource)
            state, detail = self._state(self._power(target), target.kind)
        except Failure as failure:
            return ResourceStatus(resource, failure.state or ResourceState.UNKNOWN, failure.message)
        except ProviderError:
            raise  # not about one resource: the whole call fails, saying what to do
        except Exception:
            logger.exception("azure: describing %s failed unexpectedly", resource.id)
            return ResourceStatus(resource, ResourceState.UNKNOWN, "see the NightOps log")
        return ResourceStatus(resource, state, detail)

    # -- start / stop ---------------------------------------------------------------------------

    def _act(
        self, verb: Verb, resources: Sequence[Resource], progress: ProgressCallback | None
    ) -> list[ActionResult]:
        return drive_all(
            resources, partial(self._drive, verb), progress, logger, self._max_in_flight
        )

    def _drive(self, verb: Verb, resource: Resource) -> ActionResult:
        """Bring one resource to the verb's target state; never raises."""
        try:
            return self._drive_unguarded(verb, self._target(resource))
        except Failure as failure:
            return failure.as_result(resource)
        except ProviderError:
            raise  # not about one resource: the whole call fails, saying what to do
        except Exception:
            logger.exception("azure: %s of %s failed unexpectedly", verb, resource.id)
            return ActionResult(
                resource,
                ResultKind.FAILED,
                ResourceState.UNKNOWN,
                f"{verb} of {resource.label} failed unexpectedly; see the NightOps log",
                ErrorKind.OTHER,
            )

    def _drive_unguarded(self, verb: Verb, target: _Target) -> ActionResult:
        deadline = self._clock() + self._timeout
        goal = _GOAL[verb]
        power = self._power(target)
        waited = False
        if power in _TRANSITIONING:
            power = self._settle(target, deadline)
            if power in _TRANSITIONING:
                raise self._timed_out(target, verb, power)
            waited = True
        state, _ = self._state(power, target.kind)
        if power == goal:
            kind = ResultKind.DONE if waited else ResultKind.ALREADY
            return ActionResult(target.resource, kind, state)
        if power in ("failed", "unknown"):
            raise Failure(
                ErrorKind.WRONG_STATE,
                f"cannot {verb} {target.who}: its power state is {power}; check it in the "
                "Azure portal",
                state,
            )
        client = self._client(target.subscription)
        poller: LROPoller[None]
        if target.kind == "vm":
            operations: Any = client.virtual_machines
        else:
            operations = client.virtual_machine_scale_sets
        begin = operations.begin_start if verb == "start" else operations.begin_deallocate
        action = target.action("start/action" if verb == "start" else "deallocate/action")
        try:
            poller = self._call(lambda: begin(target.group, target.name), action, target.path)
        except Failure as failure:
            failure.state = failure.state or state
            raise
        self._await_lro(target, verb, poller, deadline, state)
        power = self._settle(target, deadline)
        final, detail = self._state(power, target.kind)
        if power in _TRANSITIONING:
            raise self._timed_out(target, verb, power)
        if power == goal:
            return ActionResult(target.resource, ResultKind.DONE, final)
        raise Failure(
            ErrorKind.WRONG_STATE,
            f"the {verb} of {target.who} was accepted but it ended {power}"
            f"{f' ({detail})' if detail else ''}, not {goal}; check its activity log in the "
            "Azure portal and try again",
            final,
        )

    def _await_lro(
        self,
        target: _Target,
        verb: Verb,
        poller: LROPoller[None],
        deadline: float,
        state: ResourceState,
    ) -> None:
        """Wait for the LRO; a failed one is translated, a throttled poll falls through to
        our own power-state checks."""
        try:
            poller.result(timeout=max(0.0, deadline - self._clock()))
        except Exception as exc:  # translated right here, at the SDK boundary
            action = target.action("start/action" if verb == "start" else "deallocate/action")
            translated = self._translate(exc, action, target.path)
            if isinstance(translated, Throttled):
                logger.info("azure: polling %s failed transiently: %s", target.path, translated)
                return
            if isinstance(translated, Failure):
                translated.state = translated.state or state
                if translated.error is ErrorKind.OTHER:
                    translated.message = f"the {verb} of {target.who} failed: {exc}"
                raise translated from None
            raise
        if not poller.done():
            raise self._timed_out(target, verb, "starting" if verb == "start" else "deallocating")

    def _settle(self, target: _Target, deadline: float) -> str:
        """Poll the power state until it is not transitioning (or the deadline)."""
        while True:
            power = self._power(target)
            if power not in _TRANSITIONING:
                return power
            remaining = deadline - self._clock()
            if remaining <= 0:
                return power
            self._sleep(min(self._poll, remaining))

    def _timed_out(self, target: _Target, verb: Verb, power: str) -> Failure:
        state, _ = self._state(power, target.kind)
        return Failure(
            ErrorKind.TIMEOUT,
            f"{target.who} was still {power} {self._timeout:g} s after NightOps asked to "
            f"{verb} it; check it in the Azure portal (or raise timeout_seconds)",
            state,
        )

    # -- discovery ------------------------------------------------------------------------------

    def _wanted(self, tags: Mapping[str, str] | None, location: str, selector: Selector) -> bool:
        places = {_location(r) for r in selector.regions}
        if places and _location(location) not in places:
            return False
        have = {k.lower(): v for k, v in (tags or {}).items()}
        return all(have.get(k.lower()) == v for k, v in selector.tags)

    def _in_groups(self, group: str) -> bool:
        return not self._groups or group.lower() in self._groups

    def _discover_vms(self, subscription: str, selector: Selector) -> list[Resource]:
        client = self._client(subscription)
        where = f"/subscriptions/{subscription}"
        vms = self._call(
            lambda: list(client.virtual_machines.list_all()),
            "Microsoft.Compute/virtualMachines/read",
            where,
        )
        found: list[Resource] = []
        for vm in vms:
            group = _group_of(vm.id or "")
            if not self._in_groups(group) or not self._wanted(vm.tags, vm.location, selector):
                continue
            profile = vm.properties.hardware_profile if vm.properties else None
            size = _text(profile.vm_size) if profile is not None else ""
            found.append(
                prices.with_price(
                    Resource(
                        self.name,
                        "vm",
                        f"resourceGroups/{group}/{vm.name}",
                        name=vm.name or "",
                        region=vm.location,
                        size=size or None,
                        account=subscription,
                        tags=vm.tags or {},
                    )
                )
            )
        return found

    def _discover_scale_sets(self, subscription: str, selector: Selector) -> list[Resource]:
        client = self._client(subscription)
        where = f"/subscriptions/{subscription}"
        scale_sets = self._call(
            lambda: list(client.virtual_machine_scale_sets.list_all()),
            "Microsoft.Compute/virtualMachineScaleSets/read",
            where,
        )
        found: list[Resource] = []
        for scale_set in scale_sets:
            group = _group_of(scale_set.id or "")
            if not self._in_groups(group) or not self._wanted(
                scale_set.tags, scale_set.location, selector
            ):
                continue
            size = _text(scale_set.sku.name) if scale_set.sku else ""
            capacity = int(scale_set.sku.capacity or 0) if scale_set.sku else 0
            resource = Resource(
                self.name,
                "vmss",
                f"resourceGroups/{group}/{scale_set.name}",
                name=scale_set.name or "",
                region=scale_set.location,
                size=size or None,
                account=subscription,
                tags=scale_set.tags or {},
            )
            price = prices.hourly_price("azure", "vm", size, _location(scale_set.location))
            if price is not None and capacity:
                resource = attrs.evolve(resource, hourly_price=price * capacity)
            found.append(resource)
        return found
