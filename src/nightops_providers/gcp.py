"""Google Cloud: Compute Engine instances (kind ``gce``) and zonal managed instance groups
(kind ``mig``), through google-cloud-compute's REST clients.

Identity of a resource: ``Resource.id`` is the instance (or MIG) name — or a path
``projects/P/zones/Z/instances/N`` (``…/instanceGroupManagers/N``) — ``Resource.region`` the
zone, ``Resource.account`` the project (default: the ``project`` option, else the project of
the Application Default Credentials).

* **Instances**: start / stop (``instances.start`` / ``instances.stop``), or suspend / resume
  when the provider option ``suspend`` is true or the resource carries the tag (label)
  ``suspend = "true"``. A suspended instance counts as stopped; start resumes it.
* **MIGs**: stop resizes the group to 0, start resizes it back to the size in the resource's
  tag ``restore_size`` (from the config, or from the MIG's all-instances label
  ``restore_size`` when discovered). MIGs have no labels of their own and NightOps keeps no
  cloud-side memory, so a MIG without ``restore_size`` is refused (``UNSUPPORTED``) rather
  than shrunk to a size nobody can restore. Instances created by a MIG are left to the MIG.

Every mutating call carries a fresh ``requestId`` (uuid4) that its retries reuse, so a retry
after a lost response does not act twice. The zonal operation is awaited with
``zoneOperations.wait`` through our own ``ZoneOperationsClient`` on the same endpoint (never
``ExtendedOperation.result()``, which polls compute.googleapis.com whatever the endpoint),
then the final state is verified with ``instances.get`` until ``timeout_seconds``.
Throttling (429, 403 ``rateLimitExceeded``) and 5xx are retried with bounded exponential
backoff and jitter (Retry-After honoured); the SDK's own retries are switched off per call.

No client exists until the first call; clients are created once and reused.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Final, Literal, TypedDict, TypeVar

import attrs
import google.auth
import requests
from google.api_core import exceptions as gexc
from google.auth import credentials as gcreds
from google.auth import exceptions as gauth_exc
from google.cloud import compute_v1
from requests.adapters import HTTPAdapter

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

__all__ = ["KINDS", "RESTORE_SIZE_TAG", "SUSPEND_TAG", "GcpProvider"]

logger = logging.getLogger("nightops.providers.gcp")

T = TypeVar("T")
Verb = Literal["start", "stop"]

#: The resource kinds this provider handles.
KINDS: Final = ("gce", "mig")
#: Resource tag (or instance label) asking for suspend/resume instead of stop/start.
SUSPEND_TAG: Final = "suspend"
#: Resource tag (or MIG all-instances label) with the size a MIG is restored to on start.
RESTORE_SIZE_TAG: Final = "restore_size"

_SCOPES: Final = ("https://www.googleapis.com/auth/compute",)
_ROLE_HINT: Final = "grant it to the NightOps service account (see docs/gcp-role.yaml)"

_RUNNING = ResourceState.RUNNING
_STOPPED = ResourceState.STOPPED

#: Compute Engine instance status -> NightOps state.
_INSTANCE_STATES: Final[Mapping[str, ResourceState]] = {
    "RUNNING": ResourceState.RUNNING,
    "PROVISIONING": ResourceState.STARTING,
    "STAGING": ResourceState.STARTING,
    "PENDING": ResourceState.STARTING,
    "STOPPING": ResourceState.STOPPING,
    "PENDING_STOP": ResourceState.STOPPING,
    "SUSPENDING": ResourceState.STOPPING,
    "DEPROVISIONING": ResourceState.STOPPING,
    "TERMINATED": ResourceState.STOPPED,
    "STOPPED": ResourceState.STOPPED,
    "SUSPENDED": ResourceState.STOPPED,
    "REPAIRING": ResourceState.FAILED,
}

#: Operation error codes -> what they mean for the user.
_OPERATION_ERRORS: Final[Mapping[str, ErrorKind]] = {
    "ZONE_RESOURCE_POOL_EXHAUSTED": ErrorKind.CAPACITY,
    "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS": ErrorKind.CAPACITY,
    "QUOTA_EXCEEDED": ErrorKind.CAPACITY,
    "RESOURCE_NOT_FOUND": ErrorKind.NOT_FOUND,
    "UNSUPPORTED_OPERATION": ErrorKind.UNSUPPORTED,
    "RESOURCE_NOT_READY": ErrorKind.WRONG_STATE,
    "PERMISSIONS_ERROR": ErrorKind.PERMISSION_DENIED,
    "RATE_LIMIT_EXCEEDED": ErrorKind.THROTTLED,
}

_THROTTLE_REASONS: Final = frozenset(
    {"rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED"}
)


@attrs.frozen
class _Target:
    resource: Resource
    kind: str
    project: str
    zone: str
    name: str

    @property
    def path(self) -> str:
        noun = "instances" if self.kind == "gce" else "instanceGroupManagers"
        return f"projects/{self.project}/zones/{self.zone}/{noun}/{self.name}"

    @property
    def who(self) -> str:
        label = self.resource.name
        return f"{label} ({self.path})" if label and label != self.name else self.path


def _last(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def _region_of(zone: str) -> str:
    """``us-central1-a`` -> ``us-central1`` (a region stays a region)."""
    head, sep, tail = zone.rpartition("-")
    return head if sep and len(tail) == 1 else zone


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "yes", "1", "on")


def _reasons(exc: gexc.GoogleAPICallError) -> set[str]:
    found = {str(e.get("reason")) for e in exc.errors if isinstance(e, Mapping)}
    if exc.reason:
        found.add(exc.reason)
    return found


class _CallOptions(TypedDict):
    retry: None
    timeout: float


@attrs.define
class _Clients:
    instances: compute_v1.InstancesClient
    operations: compute_v1.ZoneOperationsClient
    groups: compute_v1.InstanceGroupManagersClient


class GcpProvider:
    """Google Compute Engine implementing :class:`~nightops_core.ports.CloudProvider`.

    All options are keyword-only; the host passes the ``[providers.gcp]`` table.

    :param project: default project of resources without ``account``.
    :param credentials: a ``google.auth`` credentials object; default: Application Default
        Credentials (``google.auth.default``).
    :param api_endpoint: Compute Engine endpoint (e.g. ``http://127.0.0.1:8080`` for a
        stand-in, or a private endpoint); default the public one.
    :param suspend: suspend/resume instead of stop/start for every instance (per instance:
        tag ``suspend = "true"``).
    :param timeout_seconds: how long a start/stop may take per resource before ``TIMEOUT``.
    :param poll_seconds: pause between state checks while verifying the final state.
    :param max_in_flight: resources acted on at the same time.
    :param max_attempts: attempts of a throttled (or 5xx) call before giving up.
    :param backoff_seconds: first backoff pause (doubles per attempt, capped at 20 s, full jitter).
    :param request_timeout: HTTP timeout of one call (``zoneOperations.wait`` blocks up to
        2 minutes server-side, so keep it above 120 s for the real API).
    :param clock: monotonic seconds (tests); :param sleep: pauses (tests).
    """

    def __init__(
        self,
        *,
        name: str = "gcp",
        project: str | None = None,
        credentials: gcreds.Credentials | None = None,
        api_endpoint: str | None = None,
        suspend: bool = False,
        timeout_seconds: float = 600.0,
        poll_seconds: float = 2.0,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        max_attempts: int = 6,
        backoff_seconds: float = 1.0,
        request_timeout: float = 150.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        check_number("timeout_seconds", timeout_seconds, minimum=0)
        check_number("poll_seconds", poll_seconds, minimum=0)
        check_number("backoff_seconds", backoff_seconds, minimum=0)
        check_number("request_timeout", request_timeout, minimum=0, strict=True)
        check_number("max_in_flight", max_in_flight, minimum=1, integer=True)
        check_number("max_attempts", max_attempts, minimum=1, integer=True)
        if not isinstance(suspend, bool):
            raise TypeError(f"suspend must be true or false, got {suspend!r}")
        self.name = name
        self._project = project
        self._credentials = credentials
        self._endpoint = api_endpoint
        self._suspend = suspend
        self._timeout = float(timeout_seconds)
        self._poll = float(poll_seconds)
        self._max_in_flight = max_in_flight
        self._max_attempts = max_attempts
        self._backoff = float(backoff_seconds)
        self._request_timeout = float(request_timeout)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._clients: _Clients | None = None
        self._adc_project: str | None = None

    # -- the CloudProvider protocol ---------------------------------------------------------

    def describe(self, resources: Sequence[Resource]) -> Sequence[ResourceStatus]:
        """Current state of each resource, in input order (one ``get`` each, concurrently).

        A suspended instance is STOPPED with detail ``suspended``; a MIG is RUNNING when its
        target size is above 0 (STARTING/STOPPING while it is not stable)."""
        return fan_out(list(resources), self._describe_one, self._max_in_flight)

    def start(
        self, resources: Sequence[Resource], progress: ProgressCallback | None = None
    ) -> Sequence[ActionResult]:
        """Start (or resume / resize back) each resource concurrently, wait and verify."""
        return self._act("start", resources, progress)

    def stop(
        self, resources: Sequence[Resource], progress: ProgressCallback | None = None
    ) -> Sequence[ActionResult]:
        """Stop (or suspend / resize to 0) each resource concurrently, wait and verify."""
        return self._act("stop", resources, progress)

    def discover(self, selector: Selector) -> Sequence[Resource]:
        """Instances (and MIGs) of the selector's project whose labels include its tags, in
        its zones or regions (all when it names none), via aggregated lists.

        Instances created by a MIG are left out (the MIG owns them); MIGs match on the
        labels of their all-instances configuration."""
        kinds = selector.kinds or KINDS
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise ProviderError(
                f"{self.name}: unknown kind {unknown[0]!r} in a selector; use {' or '.join(KINDS)}"
            )
        project = selector.account or self._default_project()
        wanted = dict(selector.tags)
        label_filter = " ".join(f'(labels.{k} = "{v}")' for k, v in sorted(wanted.items()))
        found: list[Resource] = []
        try:
            if "gce" in kinds:
                found += self._discover_instances(project, label_filter, wanted, selector)
            if "mig" in kinds:
                found += self._discover_groups(project, wanted, selector)
        except Failure as failure:
            raise ProviderError(f"{self.name}: discovery failed: {failure.message}") from None
        return found

    def close(self) -> None:
        """Close the HTTP sessions of the clients (they are recreated on next use)."""
        with self._lock:
            clients, self._clients = self._clients, None
        if clients is not None:
            for client in (clients.instances, clients.operations, clients.groups):
                # The generated transports' close() is not annotated.
                client.transport.close()  # type: ignore[no-untyped-call]

    # -- clients ------------------------------------------------------------------------------

    def _get_clients(self) -> _Clients:
        with self._lock:
            if self._clients is None:
                credentials = self._credentials
                if credentials is None:
                    credentials, self._adc_project = self._default_credentials()
                options = {"api_endpoint": self._endpoint} if self._endpoint else None
                self._clients = _Clients(
                    compute_v1.InstancesClient(
                        credentials=credentials, transport="rest", client_options=options
                    ),
                    compute_v1.ZoneOperationsClient(
                        credentials=credentials, transport="rest", client_options=options
                    ),
                    compute_v1.InstanceGroupManagersClient(
                        credentials=credentials, transport="rest", client_options=options
                    ),
                )
                for client in (
                    self._clients.instances,
                    self._clients.operations,
                    self._clients.groups,
                ):
                    self._widen_pool(client.transport)
            return self._clients

    def _widen_pool(self, transport: object) -> None:
        """Give the REST transport's session a connection pool as large as the fan-out
        (requests' default of 10 drops and reopens connections beyond that). The generated
        transports keep their ``AuthorizedSession`` in ``_session``; if a release renames
        it, the default pool stays, which is slower but still correct."""
        session = getattr(transport, "_session", None)
        if isinstance(session, requests.Session) and self._max_in_flight > 10:
            adapter = HTTPAdapter(pool_maxsize=self._max_in_flight)
            for scheme in ("https://", "http://"):
                session.mount(scheme, adapter)

    def _default_credentials(self) -> tuple[gcreds.Credentials, str | None]:
        try:
            credentials, project = google.auth.default(scopes=list(_SCOPES))
        except gauth_exc.GoogleAuthError as exc:
            raise ProviderError(
                f"{self.name}: no Google credentials found ({exc}); run "
                "'gcloud auth application-default login', set GOOGLE_APPLICATION_CREDENTIALS "
                "to a service account key, or run NightOps on GCP with a service account "
                "(see docs/providers-gcp.md)"
            ) from None
        return credentials, project

    def _default_project(self) -> str:
        if self._project:
            return self._project
        self._get_clients()
        if self._adc_project:
            return self._adc_project
        raise ProviderError(
            f"{self.name}: no project known; set the 'project' option of [providers.{self.name}] "
            "or the resource's 'account'"
        )

    @property
    def _opts(self) -> _CallOptions:
        """Per-call options: no SDK retries (ours apply), our HTTP timeout."""
        return {"retry": None, "timeout": self._request_timeout}

    # -- calls ----------------------------------------------------------------------------------

    def _call(self, call: Callable[[], T], permission: str, path: str) -> T:
        """One API call, retried while throttled or failing transiently; errors translated."""

        def attempt() -> T:
            try:
                return call()
            except Exception as exc:  # translated right here, at the SDK boundary
                raise self._translate(exc, permission, path) from exc

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
                f"Compute Engine kept failing on {path} ({exc}) after {self._max_attempts} "
                "attempts; try again later (https://status.cloud.google.com)",
            ) from None
        except Throttled:
            raise Failure(
                ErrorKind.THROTTLED,
                f"Compute Engine API requests for {path} were still rate-limited after "
                f"{self._max_attempts} attempts; try again in a minute (quotas refill per "
                "minute) or lower max_in_flight",
            ) from None

    def _translate(self, exc: Exception, permission: str, path: str) -> Exception:
        if isinstance(exc, gexc.GoogleAPICallError):
            said = exc.message or type(exc).__name__
            if isinstance(exc, gexc.TooManyRequests) or _reasons(exc) & _THROTTLE_REASONS:
                return Throttled(f"rate limited: {said}", retry_after_seconds(exc.response))
            if isinstance(exc, gexc.Unauthorized):
                return Failure(
                    ErrorKind.PERMISSION_DENIED,
                    f"Google rejected the NightOps credentials ({said}); renew them "
                    "(gcloud auth application-default login) or fix the service account key",
                )
            if isinstance(exc, gexc.Forbidden):
                return Failure(
                    ErrorKind.PERMISSION_DENIED,
                    f"missing permission {permission} on {path}; {_ROLE_HINT}",
                )
            if isinstance(exc, gexc.NotFound):
                return Failure(
                    ErrorKind.NOT_FOUND,
                    f"{path} does not exist; remove it from the collection or fix its project/zone",
                    ResourceState.MISSING,
                )
            if isinstance(exc, gexc.Conflict | gexc.FailedPrecondition) or (
                isinstance(exc, gexc.BadRequest) and "resourceNotReady" in _reasons(exc)
            ):
                return Failure(
                    ErrorKind.WRONG_STATE,
                    f"{path} is busy or in a state that does not allow this ({said}); "
                    "try again when its current operation has finished",
                )
            if isinstance(exc, gexc.ServerError):
                return Transient(f"{exc.code} {said}", retry_after_seconds(exc.response))
            return Failure(ErrorKind.OTHER, f"Compute Engine refused a call on {path}: {said}")
        if isinstance(exc, gauth_exc.GoogleAuthError):
            return Failure(
                ErrorKind.PERMISSION_DENIED,
                f"Google credentials failed ({exc}); renew them (gcloud auth "
                "application-default login) or check the service account",
            )
        if isinstance(exc, OSError):  # requests' connection errors are OSErrors
            return Transient(f"cannot reach Compute Engine: {type(exc).__name__}")
        return exc

    # -- describe -------------------------------------------------------------------------------

    def _target(self, resource: Resource) -> _Target:
        """Where the resource lives; Failure(UNSUPPORTED) if that cannot be told."""
        if resource.kind not in KINDS:
            raise Failure(
                ErrorKind.UNSUPPORTED,
                f"{self.name}: kind {resource.kind!r} of {resource.label} is not supported; "
                f"use {' or '.join(KINDS)}",
            )
        project, zone, name = resource.account, resource.region, resource.id
        parts = resource.id.strip("/").split("/")
        if len(parts) == 6 and parts[0] == "projects" and parts[2] == "zones":
            project, zone, name = parts[1], parts[3], parts[5]
        if not zone:
            raise Failure(
                ErrorKind.UNSUPPORTED,
                f"{self.name}: {resource.label} has no zone; set its region to the zone "
                "(e.g. us-central1-a)",
            )
        try:
            project = project or self._default_project()
        except ProviderError as exc:
            raise Failure(ErrorKind.UNSUPPORTED, exc.message) from None
        return _Target(resource, resource.kind, project, zone, name)

    def _describe_one(self, resource: Resource) -> ResourceStatus:
        try:
            target = self._target(resource)
            if target.kind == "mig":
                group = self._get_group(target)
                state, detail = self._group_state(target, group)
            else:
                status = self._get_instance(target).status
                state, detail = self._instance_state(status)
        except Failure as failure:
            state = failure.state or ResourceState.UNKNOWN
            return ResourceStatus(resource, state, failure.message)
        except ProviderError:
            raise  # not about one resource: the whole call fails, saying what to do
        except Exception:
            logger.exception("gcp: describing %s failed unexpectedly", resource.id)
            return ResourceStatus(resource, ResourceState.UNKNOWN, "see the NightOps log")
        return ResourceStatus(resource, state, detail)

    def _get_instance(self, target: _Target) -> compute_v1.Instance:
        clients = self._get_clients()
        return self._call(
            lambda: clients.instances.get(
                project=target.project,
                zone=target.zone,
                instance=target.name,
                retry=None,
                timeout=self._request_timeout,
            ),
            "compute.instances.get",
            target.path,
        )

    def _get_group(self, target: _Target) -> compute_v1.InstanceGroupManager:
        clients = self._get_clients()
        return self._call(
            lambda: clients.groups.get(
                project=target.project,
                zone=target.zone,
                instance_group_manager=target.name,
                retry=None,
                timeout=self._request_timeout,
            ),
            "compute.instanceGroupManagers.get",
            target.path,
        )

    @staticmethod
    def _instance_state(status: str) -> tuple[ResourceState, str]:
        state = _INSTANCE_STATES.get(status, ResourceState.UNKNOWN)
        if status == "SUSPENDED":
            return state, "suspended (memory kept; NightOps resumes it on start)"
        if status == "REPAIRING":
            return state, "REPAIRING: Compute Engine is repairing it; check its serial console"
        return state, "" if state is not ResourceState.UNKNOWN else f"status {status or '?'}"

    @staticmethod
    def _group_state(
        target: _Target, group: compute_v1.InstanceGroupManager
    ) -> tuple[ResourceState, str]:
        size = group.target_size
        stable = group.status.is_stable
        if size > 0:
            state = _RUNNING if stable else ResourceState.STARTING
        else:
            state = _STOPPED if stable else ResourceState.STOPPING
        detail = f"target size {size}"
        if RESTORE_SIZE_TAG not in dict(target.resource.tags):
            detail += f"; no {RESTORE_SIZE_TAG} tag: NightOps will not stop it"
        return state, detail

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
            target = self._target(resource)
            if target.kind == "mig":
                return self._drive_group(verb, target)
            return self._drive_instance(verb, target)
        except Failure as failure:
            return failure.as_result(resource)
        except ProviderError:
            raise  # not about one resource: the whole call fails, saying what to do
        except Exception:
            logger.exception("gcp: %s of %s failed unexpectedly", verb, resource.id)
            return ActionResult(
                resource,
                ResultKind.FAILED,
                ResourceState.UNKNOWN,
                f"{verb} of {resource.label} failed unexpectedly; see the NightOps log",
                ErrorKind.OTHER,
            )

    def _wants_suspend(self, target: _Target, instance: compute_v1.Instance) -> bool:
        tag = dict(target.resource.tags).get(SUSPEND_TAG)
        if tag is not None:
            return _truthy(tag)
        return self._suspend or _truthy(dict(instance.labels).get(SUSPEND_TAG))

    def _drive_instance(self, verb: Verb, target: _Target) -> ActionResult:
        deadline = self._clock() + self._timeout
        wanted = _RUNNING if verb == "start" else _STOPPED
        instance = self._get_instance(target)
        status = instance.status
        state, _ = self._instance_state(status)
        waited = False
        if state.is_transitioning:
            status = self._settle_instance(target, deadline)
            state, _ = self._instance_state(status)
            if state.is_transitioning:
                raise self._timed_out(target, verb, state)
            waited = True
        if state is wanted:
            kind = ResultKind.DONE if waited else ResultKind.ALREADY
            return ActionResult(target.resource, kind, state)
        if state not in (_RUNNING, _STOPPED):
            raise Failure(
                ErrorKind.WRONG_STATE,
                f"cannot {verb} {target.who} while it is {status or 'in an unknown state'}; "
                "check it in the Cloud Console",
                state,
            )
        clients = self._get_clients()
        request_id = str(uuid.uuid4())  # the same for every retry of this one call
        where = {"project": target.project, "zone": target.zone, "instance": target.name}
        call: Callable[[], compute_v1.Operation]
        if verb == "start" and status == "SUSPENDED":
            permission = "compute.instances.resume"
            resume = compute_v1.ResumeInstanceRequest(**where, request_id=request_id)
            call = partial(
                clients.instances.resume_unary, resume, retry=None, timeout=self._request_timeout
            )
        elif verb == "start":
            permission = "compute.instances.start"
            start = compute_v1.StartInstanceRequest(**where, request_id=request_id)
            call = partial(
                clients.instances.start_unary, start, retry=None, timeout=self._request_timeout
            )
        elif self._wants_suspend(target, instance):
            permission = "compute.instances.suspend"
            suspend = compute_v1.SuspendInstanceRequest(**where, request_id=request_id)
            call = partial(
                clients.instances.suspend_unary, suspend, retry=None, timeout=self._request_timeout
            )
        else:
            permission = "compute.instances.stop"
            stop = compute_v1.StopInstanceRequest(**where, request_id=request_id)
            call = partial(
                clients.instances.stop_unary, stop, retry=None, timeout=self._request_timeout
            )
        operation = self._with_state(state, lambda: self._call(call, permission, target.path))
        self._await_operation(target, operation, deadline, state, permission)
        status = self._settle_instance(target, deadline)
        final, detail = self._instance_state(status)
        if final.is_transitioning:
            raise self._timed_out(target, verb, final)
        if final is wanted:
            return ActionResult(target.resource, ResultKind.DONE, final)
        if final is ResourceState.MISSING:
            raise Failure(ErrorKind.NOT_FOUND, f"{target.who} disappeared", final)
        raise Failure(
            ErrorKind.WRONG_STATE,
            f"the {verb} of {target.who} was accepted but it ended {status} "
            f"({final.value}), not {wanted.value}{f': {detail}' if detail else ''}; check its "
            "serial console and quotas, then try again",
            final,
        )

    @staticmethod
    def _with_state(state: ResourceState, call: Callable[[], T]) -> T:
        """Run ``call``; a failure without a state gets the state observed before it."""
        try:
            return call()
        except Failure as failure:
            if failure.state is None:
                failure.state = state
            raise

    def _settle_instance(self, target: _Target, deadline: float) -> str:
        """Poll ``instances.get`` until the instance is not transitioning (or the deadline)."""
        while True:
            status = self._get_instance(target).status
            if not _INSTANCE_STATES.get(status, _RUNNING).is_transitioning:
                return status
            remaining = deadline - self._clock()
            if remaining <= 0:
                return status
            self._pause(min(self._poll, remaining))

    def _await_operation(
        self,
        target: _Target,
        operation: compute_v1.Operation,
        deadline: float,
        state: ResourceState,
        permission: str,
    ) -> None:
        """Wait for a zonal operation with our own ZoneOperationsClient; translate its error."""
        done = compute_v1.Operation.Status.DONE
        while operation.status != done:
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise self._timed_out(target, "act on", state)
            operation = self._with_state(state, partial(self._wait, target, operation.name))
            if operation.status != done:
                self._pause(min(self._poll, max(0.0, deadline - self._clock())))
        errors = list(operation.error.errors) if operation.error else []
        if not errors:
            return
        code, text = errors[0].code, errors[0].message
        error = _OPERATION_ERRORS.get(code, ErrorKind.OTHER)
        if operation.http_error_status_code == 403 and error is ErrorKind.OTHER:
            error = ErrorKind.PERMISSION_DENIED
        advice = {
            ErrorKind.CAPACITY: "the zone has no capacity or the project hit a quota; try "
            "later, another zone, or ask for more quota",
            ErrorKind.PERMISSION_DENIED: f"missing permission {permission}; {_ROLE_HINT}",
            ErrorKind.UNSUPPORTED: "this instance does not support it (e.g. suspend with "
            'GPUs or local SSDs); set suspend = "false"',
            ErrorKind.NOT_FOUND: "remove it from the collection",
        }.get(error, "check the operation in the Cloud Console")
        raise Failure(
            error,
            f"{operation.operation_type or 'operation'} of {target.who} failed: {code}: "
            f"{text}; {advice}",
            ResourceState.MISSING if error is ErrorKind.NOT_FOUND else state,
        )

    def _wait(self, target: _Target, name: str) -> compute_v1.Operation:
        """One ``zoneOperations.wait`` (returns when done, or after up to 2 minutes)."""
        clients = self._get_clients()
        return self._call(
            lambda: clients.operations.wait(
                project=target.project, zone=target.zone, operation=name, **self._opts
            ),
            "compute.zoneOperations.get",
            f"projects/{target.project}/zones/{target.zone}/operations/{name}",
        )

    def _timed_out(self, target: _Target, verb: str, state: ResourceState) -> Failure:
        return Failure(
            ErrorKind.TIMEOUT,
            f"{target.who} did not finish {state.value if state.is_transitioning else verb} "
            f"within {self._timeout:g} s; check it in the Cloud Console (or raise "
            "timeout_seconds)",
            state,
        )

    def _drive_group(self, verb: Verb, target: _Target) -> ActionResult:
        deadline = self._clock() + self._timeout
        group = self._get_group(target)
        state, _ = self._group_state(target, group)
        waited = False
        if state.is_transitioning:
            group = self._settle_group(target, deadline, group)
            state, _ = self._group_state(target, group)
            if state.is_transitioning:
                raise self._timed_out(target, verb, state)
            waited = True
        wanted = _RUNNING if verb == "start" else _STOPPED
        if state is wanted:
            kind = ResultKind.DONE if waited else ResultKind.ALREADY
            return ActionResult(target.resource, kind, state)
        restore = dict(target.resource.tags).get(RESTORE_SIZE_TAG, "").strip()
        if not restore.isdigit() or int(restore) < 1:
            now = f"; it has {group.target_size} now" if verb == "stop" else ""
            raise Failure(
                ErrorKind.UNSUPPORTED,
                f"NightOps does not know the size to restore {target.who} to; set the tag "
                f'{RESTORE_SIZE_TAG} = "<size>" on the resource (or the label '
                f"{RESTORE_SIZE_TAG} in the MIG's all-instances configuration){now}",
                state,
            )
        size = int(restore) if verb == "start" else 0
        clients = self._get_clients()
        request_id = str(uuid.uuid4())
        operation = self._with_state(
            state,
            lambda: self._call(
                lambda: clients.groups.resize_unary(
                    compute_v1.ResizeInstanceGroupManagerRequest(
                        project=target.project,
                        zone=target.zone,
                        instance_group_manager=target.name,
                        size=size,
                        request_id=request_id,
                    ),
                    retry=None,
                    timeout=self._request_timeout,
                ),
                "compute.instanceGroupManagers.update",
                target.path,
            ),
        )
        self._await_operation(
            target, operation, deadline, state, "compute.instanceGroupManagers.update"
        )
        group = self._settle_group(target, deadline, None)
        final, _ = self._group_state(target, group)
        if final.is_transitioning:
            raise self._timed_out(target, verb, final)
        if group.target_size == size:
            return ActionResult(target.resource, ResultKind.DONE, final)
        raise Failure(
            ErrorKind.WRONG_STATE,
            f"the resize of {target.who} to {size} was accepted but its target size is "
            f"{group.target_size}; an autoscaler may manage it (turn it off, or leave the MIG "
            "out of NightOps)",
            final,
        )

    def _settle_group(
        self, target: _Target, deadline: float, group: compute_v1.InstanceGroupManager | None
    ) -> compute_v1.InstanceGroupManager:
        while True:
            if group is None or not group.status.is_stable:
                group = self._get_group(target)
            if group.status.is_stable:
                return group
            remaining = deadline - self._clock()
            if remaining <= 0:
                return group
            self._pause(min(self._poll, remaining))

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self._sleep(seconds)

    # -- discovery ------------------------------------------------------------------------------

    def _discover_instances(
        self, project: str, label_filter: str, wanted: Mapping[str, str], selector: Selector
    ) -> list[Resource]:
        clients = self._get_clients()
        request = compute_v1.AggregatedListInstancesRequest(project=project)
        if label_filter:
            request.filter = label_filter
        pairs = self._call(
            lambda: list(
                clients.instances.aggregated_list(
                    request=request, retry=None, timeout=self._request_timeout
                )
            ),
            "compute.instances.list",
            f"projects/{project}",
        )
        found: list[Resource] = []
        for _, scoped in pairs:
            for instance in scoped.instances:
                zone = _last(instance.zone)
                labels = dict(instance.labels)
                if not self._matches(zone, labels, wanted, selector.regions):
                    continue
                metadata = {item.key: item.value for item in instance.metadata.items}
                if "/instanceGroupManagers/" in metadata.get("created-by", ""):
                    logger.debug("gcp: %s belongs to a MIG; discover the MIG", instance.name)
                    continue
                found.append(
                    self._priced(
                        Resource(
                            self.name,
                            "gce",
                            instance.name,
                            name=instance.name,
                            region=zone,
                            size=_last(instance.machine_type) or None,
                            account=project,
                            tags=labels,
                        )
                    )
                )
        return found

    def _discover_groups(
        self, project: str, wanted: Mapping[str, str], selector: Selector
    ) -> list[Resource]:
        clients = self._get_clients()
        request = compute_v1.AggregatedListInstanceGroupManagersRequest(project=project)
        pairs = self._call(
            lambda: list(
                clients.groups.aggregated_list(
                    request=request, retry=None, timeout=self._request_timeout
                )
            ),
            "compute.instanceGroupManagers.list",
            f"projects/{project}",
        )
        found: list[Resource] = []
        for _, scoped in pairs:
            for group in scoped.instance_group_managers:
                if not group.zone:
                    continue  # regional MIGs are not supported yet
                zone = _last(group.zone)
                labels = dict(group.all_instances_config.properties.labels)
                if self._matches(zone, labels, wanted, selector.regions):
                    found.append(
                        Resource(
                            self.name,
                            "mig",
                            group.name,
                            name=group.name,
                            region=zone,
                            account=project,
                            tags=labels,
                        )
                    )
        return found

    @staticmethod
    def _matches(
        zone: str, labels: Mapping[str, str], wanted: Mapping[str, str], regions: Iterable[str]
    ) -> bool:
        places = tuple(regions)
        in_place = not places or any(zone == p or _region_of(zone) == p for p in places)
        return in_place and all(labels.get(k) == v for k, v in wanted.items())

    @staticmethod
    def _priced(resource: Resource) -> Resource:
        """Catalog price by the zone's region (the catalog is per region)."""
        price = prices.hourly_price(
            "gcp", resource.kind, resource.size, _region_of(resource.region)
        )
        return attrs.evolve(resource, hourly_price=price) if price is not None else resource
