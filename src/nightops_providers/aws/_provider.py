"""The AWS provider: groups resources by kind, account and region, and drives each group
through observe -> decide -> call -> verify."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, Final

import attrs

from nightops_core.errors import ProviderError
from nightops_core.model import Resource, ResourceState, ResourceStatus, Selector
from nightops_core.ports import ActionResult, ErrorKind, ProgressCallback, ResultKind
from nightops_providers import prices
from nightops_providers._common import (
    DEFAULT_MAX_IN_FLIGHT,
    ProgressReporter,
    all_filled,
    check_number,
    fan_out,
    target_state,
    who,
)
from nightops_providers.aws._api import Api, CallFailed, ClientHook, Place
from nightops_providers.aws._kinds import DRIVERS, Driver, Observed, Outcome, Verb

__all__ = ["KINDS", "AwsProvider"]

logger = logging.getLogger("nightops.providers.aws")

#: The kinds of resource the provider knows.
KINDS: Final = tuple(driver.kind for driver in DRIVERS)

#: After a call was accepted, a resource still seen in its old state is taken for
#: "not there yet" (describes are eventually consistent) until it has moved, its state
#: reason has changed, or this long has passed.
_SETTLE_GRACE_SECONDS: Final = 30.0

_S = ResourceState
_GERUND: Final[Mapping[str, str]] = {"start": "starting", "stop": "stopping"}

#: The shared option check, refusing NaN too (as the AWS provider always has).
_check_number = partial(check_number, reject_nan=True)


def _check_accounts(accounts: object) -> dict[str, str]:
    if not isinstance(accounts, Mapping):
        raise TypeError("accounts must be a table of account id = role ARN")
    for account, arn in accounts.items():
        if not (isinstance(account, str) and account.isdigit() and len(account) == 12):
            raise ValueError(f"accounts: {account!r} is not a 12-digit AWS account id")
        if not (isinstance(arn, str) and arn.startswith("arn:") and ":role/" in arn):
            raise ValueError(
                f"accounts.{account}: {arn!r} is not a role ARN "
                f"(like arn:aws:iam::{account}:role/NightOps)"
            )
    return dict(accounts)


@attrs.define
class _Item:
    """One resource on its way to the wanted state (one start/stop)."""

    index: int
    resource: Resource
    observed: Observed | None = None
    called_at: float | None = None
    before: Observed | None = None
    moved: bool = False
    note: str = ""
    first: bool = True


@attrs.frozen
class _Unit:
    """Work done by one thread: a driver, a place, and the items it acts on."""

    driver: Driver
    place: Place
    items: tuple[_Item, ...]


class AwsProvider:
    """Amazon Web Services, implementing :class:`~nightops_core.ports.CloudProvider`.

    Kinds: ``ec2`` (instances), ``rds`` (DB instances), ``aurora`` (DB clusters), ``asg``
    (Auto Scaling groups: scaled to 0 and back), ``ecs`` (services ``cluster/service``:
    desired count to 0 and back). See ``docs/providers-aws.md``.

    All options are keyword-only; the host passes the ``[providers.aws]`` table.

    :param name: the provider name NightOps knows it by.
    :param profile: the AWS profile (else boto3's standard credential chain).
    :param region: region of resources that name none, and for STS.
    :param regions: regions :meth:`discover` searches when a selector names none
        (default: every region enabled for the account, from ec2:DescribeRegions).
    :param accounts: account id -> role ARN to assume for resources of that account.
    :param endpoint_url: a different AWS endpoint (a proxy, LocalStack, moto); boto3
        also honours ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>``.
    :param max_in_flight: units of work (a region's EC2 batch, one RDS database, …) in
        flight at once.
    :param verify_timeout_seconds: how long start/stop wait for each resource to reach
        its final state before reporting ``TIMEOUT``.
    :param poll_seconds: pause between describes while waiting.
    :param hibernate: hibernate EC2 instances on stop (where enabled); the instance tag
        ``nightops:hibernate`` = true/false overrides it per instance.
    :param start_rate_per_second: / :param start_burst: the client-side token bucket pacing
        EC2 StartInstances calls per account and region (AWS: burst 5, 2 per second).
    :param max_attempts: attempts per API call inside botocore ("standard" retry mode:
        throttling and transient errors, exponential backoff with jitter).
    :param throttle_attempts: rounds of those, with our own full-jitter backoff between
        them, before a still-throttled call gives ``THROTTLED``.
    :param role_session_name: the session name when assuming roles (shows in CloudTrail).
    :param session: a ``boto3.Session`` to use instead of creating one (embedding, tests).
    :param on_client: called with (service name, client) for every boto3 client created
        (to register botocore event handlers: metrics, tracing, tests).
    :param seed: seed of the jitter's random generator.
    :param clock: monotonic seconds; :param sleep: pauses the calling thread (inject fakes
        in tests).

    Nothing is created when the provider is built: the session, clients and assumed
    roles come on first use, and are reused.
    """

    def __init__(
        self,
        *,
        name: str = "aws",
        profile: str | None = None,
        region: str | None = None,
        regions: Sequence[str] | None = None,
        accounts: Mapping[str, str] | None = None,
        endpoint_url: str | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        verify_timeout_seconds: float = 600.0,
        poll_seconds: float = 5.0,
        hibernate: bool = False,
        start_rate_per_second: float = 2.0,
        start_burst: int = 5,
        max_attempts: int = 5,
        throttle_attempts: int = 4,
        role_session_name: str = "nightops",
        session: Any | None = None,
        on_client: ClientHook | None = None,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        _check_number("max_in_flight", max_in_flight, minimum=1, integer=True)
        _check_number("verify_timeout_seconds", verify_timeout_seconds, minimum=0)
        _check_number("poll_seconds", poll_seconds, minimum=0, strict=True)
        _check_number("start_rate_per_second", start_rate_per_second, minimum=0, strict=True)
        _check_number("start_burst", start_burst, minimum=1, integer=True)
        _check_number("max_attempts", max_attempts, minimum=1, integer=True)
        _check_number("throttle_attempts", throttle_attempts, minimum=1, integer=True)
        if not isinstance(hibernate, bool):
            raise TypeError(f"hibernate must be true or false, got {hibernate!r}")
        if regions is not None and (
            isinstance(regions, str) or not all(isinstance(r, str) and r for r in regions)
        ):
            raise TypeError(f"regions must be a list of region names, got {regions!r}")
        self.name = name
        self._regions = tuple(regions) if regions is not None else None
        self._max_in_flight = max_in_flight
        self._timeout = float(verify_timeout_seconds)
        self._poll = float(poll_seconds)
        self._clock = clock
        self._sleep = sleep
        self._api = Api(
            session=session,
            profile=profile,
            region=region,
            accounts=_check_accounts(accounts or {}),
            endpoint_url=endpoint_url,
            max_attempts=max_attempts,
            max_pool_connections=max(10, max_in_flight),
            throttle_attempts=throttle_attempts,
            role_session_name=role_session_name,
            start_rate=float(start_rate_per_second),
            start_burst=start_burst,
            clock=clock,
            sleep=sleep,
            rng=random.Random(seed),  # noqa: S311 - jitter, not cryptography
            on_client=on_client,
        )
        self._drivers = {d.kind: d(self._api, name, hibernate) for d in DRIVERS}

    # -- the CloudProvider protocol -----------------------------------------------------------

    def describe(self, resources: Sequence[Resource]) -> Sequence[ResourceStatus]:
        """Current state of each resource, in input order: one batched describe per kind,
        account and region (run concurrently). UNKNOWN (with the reason) rather than raising."""
        resources = list(resources)
        statuses: list[ResourceStatus | None] = [None] * len(resources)
        groups: dict[tuple[str, Place], list[int]] = {}
        for index, resource in enumerate(resources):
            driver, place, problem = self._locate(resource)
            if problem is not None:
                statuses[index] = ResourceStatus(resource, _S.UNKNOWN, problem.message_for(""))
                continue
            assert driver is not None
            assert place is not None
            groups.setdefault((driver.kind, place), []).append(index)

        def observe(group: tuple[tuple[str, Place], list[int]]) -> None:
            (kind, place), indexes = group
            batch = [resources[i] for i in indexes]
            try:
                observed = self._drivers[kind].observe(place, batch)
            except CallFailed as exc:
                for i in indexes:
                    statuses[i] = ResourceStatus(
                        resources[i], _S.UNKNOWN, exc.message_for(who(resources[i]))
                    )
                return
            for i in indexes:
                seen = observed.get(resources[i].id)
                if seen is None:
                    statuses[i] = ResourceStatus(resources[i], _S.MISSING, "not found")
                else:
                    statuses[i] = ResourceStatus(resources[i], seen.state, seen.detail)

        fan_out(list(groups.items()), observe, self._max_in_flight)
        return all_filled(statuses)

    def start(
        self, resources: Sequence[Resource], progress: ProgressCallback | None = None
    ) -> Sequence[ActionResult]:
        """Start the resources, wait until each runs (or fails), verify the final state.
        One result per resource, in input order."""
        return self._act("start", resources, progress)

    def stop(
        self, resources: Sequence[Resource], progress: ProgressCallback | None = None
    ) -> Sequence[ActionResult]:
        """Stop the resources, wait until each is stopped (or fails), verify the final
        state. One result per resource, in input order."""
        return self._act("stop", resources, progress)

    def discover(self, selector: Selector) -> Sequence[Resource]:
        """Resources carrying all the selector's tags, in its regions (default: the
        ``regions`` option, else every enabled region), of its kinds (default: all),
        with the selector's account's credentials. Prices come from the catalog.

        :raises ProviderError: an unknown kind, or AWS refused or could not be reached.
        """
        unknown = [kind for kind in selector.kinds if kind not in self._drivers]
        if unknown:
            raise ProviderError(
                f"aws: unknown kind {unknown[0]!r} in a selector; use one of: {', '.join(KINDS)}"
            )
        kinds = [k for k in KINDS if not selector.kinds or k in selector.kinds]
        tags = dict(selector.tags)
        try:
            self._api.check_account(selector.account)
            regions = selector.regions or self._regions or self._enabled_regions(selector)
            places = [Place(selector.account, region) for region in regions]
            found = fan_out(places, lambda place: self._discover_in(place, kinds, tags))
        except CallFailed as exc:
            raise ProviderError(
                f"aws: discovery failed: {exc.message_for('the selector')}"
            ) from exc
        return [self._priced(resource) for batch in found for resource in batch]

    # -- discovery ---------------------------------------------------------------------------

    def _enabled_regions(self, selector: Selector) -> tuple[str, ...]:
        answer = self._api.call(
            Place(selector.account, self._api.default_region()), "ec2", "describe_regions"
        )
        return tuple(sorted(str(r["RegionName"]) for r in answer.get("Regions", [])))

    def _discover_in(
        self, place: Place, kinds: Sequence[str], tags: dict[str, str]
    ) -> list[Resource]:
        found: list[Resource] = []
        tagged_kinds = [self._drivers[k] for k in kinds if self._drivers[k].tag_types]
        for kind in kinds:
            driver = self._drivers[kind]
            if not driver.tag_types:
                found.extend(driver.discover(place, tags))
        if tagged_kinds:
            by_type: dict[str, dict[str, dict[str, str]]] = {}
            types = [t for driver in tagged_kinds for t in driver.tag_types]
            for page in self._api.pages(
                place,
                "resourcegroupstaggingapi",
                "get_resources",
                cursor="PaginationToken",
                TagFilters=[{"Key": k, "Values": [v]} for k, v in tags.items()],
                ResourceTypeFilters=types,
                ResourcesPerPage=100,
            ):
                for mapping in page.get("ResourceTagMappingList", []):
                    arn = str(mapping["ResourceARN"])
                    kind = _arn_type(arn)
                    resource_tags = {
                        str(t["Key"]): str(t.get("Value", "")) for t in mapping.get("Tags", [])
                    }
                    by_type.setdefault(kind, {})[arn] = resource_tags
            for driver in tagged_kinds:
                tagged = {
                    arn: t for tt in driver.tag_types for arn, t in by_type.get(tt, {}).items()
                }
                if tagged:
                    found.extend(driver.from_arns(place, tagged))
        return found

    def _priced(self, resource: Resource) -> Resource:
        # The catalog is looked up by provider name; ours is "aws" whatever our name.
        priced = prices.with_price(attrs.evolve(resource, provider="aws"))
        return attrs.evolve(priced, provider=self.name)

    # -- start / stop --------------------------------------------------------------------------

    def _locate(self, resource: Resource) -> tuple[Driver | None, Place | None, CallFailed | None]:
        driver = self._drivers.get(resource.kind)
        if driver is None:
            return (
                None,
                None,
                CallFailed(
                    ErrorKind.UNSUPPORTED,
                    f"aws: {who(resource)} has kind {resource.kind!r}, which NightOps cannot "
                    f"act on; use one of: {', '.join(KINDS)}",
                ),
            )
        try:
            self._api.check_account(resource.account)
            region = resource.region or self._api.default_region()
        except CallFailed as exc:
            return None, None, exc
        return driver, Place(resource.account, region), None

    def _act(
        self, verb: Verb, resources: Sequence[Resource], progress: ProgressCallback | None
    ) -> list[ActionResult]:
        resources = list(resources)
        report = ProgressReporter(progress, logger)
        results: list[ActionResult | None] = [None] * len(resources)

        def settle(result: ActionResult, index: int) -> None:
            results[index] = result
            report(result)

        grouped: dict[tuple[str, Place], list[_Item]] = {}
        for index, resource in enumerate(resources):
            driver, place, problem = self._locate(resource)
            if problem is not None:
                message = problem.message_for(who(resource))
                settle(
                    ActionResult(resource, ResultKind.FAILED, _S.UNKNOWN, message, problem.error),
                    index,
                )
                continue
            assert driver is not None
            assert place is not None
            grouped.setdefault((driver.kind, place), []).append(_Item(index, resource))
        units: list[_Unit] = []
        for (kind, place), items in grouped.items():
            driver = self._drivers[kind]
            if driver.batched:
                units.append(_Unit(driver, place, tuple(items)))
            else:
                units.extend(_Unit(driver, place, (item,)) for item in items)

        def run(unit: _Unit) -> None:
            try:
                self._drive(verb, unit, settle)
            except Exception:
                logger.exception("aws: %s in %s failed unexpectedly", verb, unit.place)
                for item in unit.items:
                    if results[item.index] is None:
                        settle(
                            ActionResult(
                                item.resource,
                                ResultKind.FAILED,
                                _S.UNKNOWN,
                                f"aws: the {verb} of {who(item.resource)} failed unexpectedly; "
                                "see the NightOps log",
                                ErrorKind.OTHER,
                            ),
                            item.index,
                        )

        fan_out(units, run, self._max_in_flight)
        return all_filled(results)

    def _drive(self, verb: Verb, unit: _Unit, settle: Callable[[ActionResult, int], None]) -> None:
        """Observe, decide, call, verify — until every item has settled or time is up."""
        driver, place = unit.driver, unit.place
        target = target_state(verb)
        pending = list(unit.items)
        deadline = self._clock() + self._timeout
        last_problem: CallFailed | None = None

        def finish(item: _Item, result: ActionResult) -> None:
            pending.remove(item)
            settle(result, item.index)

        def fail(item: _Item, state: ResourceState, error: ErrorKind, message: str) -> None:
            finish(item, ActionResult(item.resource, ResultKind.FAILED, state, message, error))

        while True:
            try:
                observed = driver.observe(place, [item.resource for item in pending])
                last_problem = None
            except CallFailed as exc:
                if all(item.first for item in pending):
                    for item in list(pending):
                        fail(item, _S.UNKNOWN, exc.error, exc.message_for(who(item.resource)))
                    return
                observed = None  # keep waiting; a describe may fail now and then
                last_problem = exc
            to_call: list[_Item] = []
            for item in list(pending):
                if observed is not None:
                    item.observed = observed.get(item.resource.id) or Observed(_S.MISSING)
                if item.observed is None:
                    continue
                decision = self._decide(verb, driver, item, item.observed, target)
                item.first = False
                if decision == "call":
                    to_call.append(item)
                elif isinstance(decision, ActionResult):
                    finish(item, decision)
            if to_call:
                outcomes = driver.call(
                    verb,
                    place,
                    [(item.resource, item.observed) for item in to_call if item.observed],
                )
                now = self._clock()
                for item in to_call:
                    outcome: Outcome = outcomes.get(item.resource.id, "")
                    if isinstance(outcome, CallFailed):
                        assert item.observed is not None
                        state = (
                            _S.MISSING
                            if outcome.error is ErrorKind.NOT_FOUND
                            else item.observed.state
                        )
                        fail(item, state, outcome.error, outcome.message_for(who(item.resource)))
                    else:
                        item.called_at = now
                        item.before = item.observed
                        item.note = outcome
            if not pending:
                return
            remaining = deadline - self._clock()
            if remaining <= 0:
                for item in list(pending):
                    state = item.observed.state if item.observed else _S.UNKNOWN
                    why = f" (last describe failed: {last_problem.text})" if last_problem else ""
                    fail(
                        item,
                        state,
                        ErrorKind.TIMEOUT,
                        f"{who(item.resource)} did not finish {_GERUND[verb]} "
                        f"within {self._timeout:g} s (it is {state.value}){why}; check it in the "
                        "AWS console (or raise verify_timeout_seconds)",
                    )
                return
            self._sleep(min(self._poll, remaining))

    def _decide(
        self, verb: Verb, driver: Driver, item: _Item, seen: Observed, target: ResourceState
    ) -> ActionResult | str | None:
        """What to do with one item now: a final result, "call", or None (keep waiting)."""
        resource = item.resource

        def result(
            kind: ResultKind, message: str = "", error: ErrorKind | None = None
        ) -> ActionResult:
            return ActionResult(resource, kind, seen.state, message, error)

        if seen.state is _S.MISSING:
            because = f" ({seen.detail})" if seen.detail else ""
            return result(
                ResultKind.FAILED,
                f"{who(resource)} does not exist{because}; remove it from the collection "
                "or fix its id, region or account",
                ErrorKind.NOT_FOUND,
            )
        if item.called_at is None:
            refusal = driver.check(verb, resource, seen)
            if refusal is not None:
                return refusal
            if seen.state is target:
                return result(ResultKind.ALREADY if item.first else ResultKind.DONE)
            if seen.state.is_transitioning:
                return None  # on its way (to the target, or back first: act then)
            if seen.state in (_S.FAILED, _S.UNKNOWN):
                return result(
                    ResultKind.FAILED,
                    f"cannot {verb} {who(resource)} while it is in this state "
                    f"({seen.detail or seen.state.value}); check it in the AWS console",
                    ErrorKind.WRONG_STATE,
                )
            return "call"
        if seen.state is target:
            return result(ResultKind.DONE, item.note)
        if seen.state.is_transitioning:
            item.moved = True
            return None
        before = item.before
        changed = before is not None and (
            before.state is not seen.state or before.detail != seen.detail
        )
        waited = self._clock() - (item.called_at or 0.0)
        if item.moved or changed or waited >= min(_SETTLE_GRACE_SECONDS, self._timeout):
            return result(
                ResultKind.FAILED, driver.fell_back(verb, resource, seen), ErrorKind.WRONG_STATE
            )
        return None  # not visible yet: describes are eventually consistent


def _arn_type(arn: str) -> str:
    """``arn:aws:rds:…:db:x`` -> ``rds:db``; ``arn:aws:ecs:…:service/c/s`` -> ``ecs:service``."""
    parts = arn.split(":", 6)
    if len(parts) < 6:
        return ""
    resource = parts[5]
    return f"{parts[2]}:{resource.split('/', 1)[0]}"
