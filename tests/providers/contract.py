"""The provider contract: what every :class:`~nightops_core.ports.CloudProvider` must do.

One suite for the sandbox and the real clouds' providers. To run it against a provider,
write a harness (see :class:`ProviderHarness`) that builds the provider against its
stand-in (the sandbox itself, moto, a local fake of the GCP/Azure API) and can create
resources in a given state there, then subclass :class:`ProviderContract` in a test module::

    from contract import ProviderContract

    class TestAwsContract(ProviderContract):
        def make_harness(self, *, real_time: bool) -> AwsHarness:
            return AwsHarness(real_time=real_time)

A harness that cannot simulate something (a fault, slow transitions) calls
``pytest.skip(reason)`` from the method concerned; the tests that need it are skipped.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Protocol

import pytest

from nightops_core.model import Resource, ResourceState, Selector
from nightops_core.ports import ActionResult, CloudProvider, ErrorKind, ResultKind

RUNNING = ResourceState.RUNNING
STOPPED = ResourceState.STOPPED

#: Faults a harness may be asked to inject (the sandbox's names, which say what they mean):
#: ``fail-start`` / ``fail-stop`` (the role lacks the permission), ``fallback`` (a start is
#: accepted and the resource drops back to stopped), ``missing`` (it no longer exists).
CONTRACT_FAULTS = ("fail-start", "fail-stop", "fallback", "missing")


class ProviderHarness(Protocol):
    """A provider under test plus control over the (stand-in) cloud behind it."""

    @property
    def provider(self) -> CloudProvider:
        """The provider under test."""
        ...

    @property
    def regions(self) -> tuple[str, str]:
        """Two distinct regions (or zones) resources can be created in."""
        ...

    @property
    def transition_seconds(self) -> float:
        """How long a transition takes in real time (used by the concurrency test only)."""
        ...

    def create(
        self,
        state: ResourceState,
        *,
        region: str | None = None,
        tags: Mapping[str, str] | None = None,
        name: str = "",
    ) -> Resource:
        """A new resource in ``state`` (RUNNING or STOPPED) in ``region`` (default the
        first of :attr:`regions`) carrying ``tags``."""
        ...

    def inject(self, resource: Resource, fault: str) -> None:
        """Make the cloud misbehave for ``resource``: one of :data:`CONTRACT_FAULTS`."""
        ...

    def set_state(self, resource: Resource, state: ResourceState) -> None:
        """Change the state behind the provider's back (drift)."""
        ...

    def state_of(self, resource: Resource) -> ResourceState:
        """The stand-in's own view of the state (not through the provider)."""
        ...

    def mutating_calls(self) -> list[tuple[str, str]]:
        """``(verb, resource id)`` of every start/stop API call made so far, throttled
        attempts included; ``verb`` is ``"start"`` or ``"stop"``."""
        ...

    def close(self) -> None:
        """Release whatever the harness holds (servers, threads)."""
        ...


class FakeTime:
    """A monotonic clock and a ``sleep`` that advances it instead of waiting.

    Shared by all threads: concurrent sleeps add up, so it measures work, not elapsed
    time; use real time to measure concurrency.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
            self.sleeps.append(seconds)


class ProgressRecorder:
    """A thread-safe progress callback that keeps what it was given."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.results: list[ActionResult] = []

    def __call__(self, result: ActionResult) -> None:
        with self._lock:
            self.results.append(result)


def ids(resources: Mapping[str, Resource] | list[Resource]) -> list[str]:
    values = resources.values() if isinstance(resources, Mapping) else resources
    return [r.id for r in values]


class ProviderContract:
    """The contract suite. Subclass it as ``Test…`` and implement :meth:`make_harness`."""

    #: Resources started at once by the concurrency test.
    concurrency_count = 8
    #: The concurrency test passes if N resources settle within this fraction of N x T.
    concurrency_ratio = 0.5

    def make_harness(self, *, real_time: bool) -> ProviderHarness:
        """A fresh harness. ``real_time=False``: as fast as possible (fake clock, instant
        transitions); ``real_time=True``: transitions take ``transition_seconds`` of wall
        time (short, e.g. 0.1 s), for the concurrency test."""
        raise NotImplementedError

    @pytest.fixture
    def harness(self) -> Iterator[ProviderHarness]:
        harness = self.make_harness(real_time=False)
        try:
            yield harness
        finally:
            harness.close()

    @pytest.fixture
    def timed_harness(self) -> Iterator[ProviderHarness]:
        harness = self.make_harness(real_time=True)
        try:
            yield harness
        finally:
            harness.close()

    # -- start / stop ----------------------------------------------------------------------

    def test_start_runs_stopped_resources(self, harness: ProviderHarness) -> None:
        resources = [harness.create(STOPPED), harness.create(STOPPED)]
        results = harness.provider.start(resources)
        assert [r.kind for r in results] == [ResultKind.DONE, ResultKind.DONE]
        assert all(r.ok and r.state is RUNNING and r.error is None for r in results)
        assert [harness.state_of(r) for r in resources] == [RUNNING, RUNNING]

    def test_stop_stops_running_resources(self, harness: ProviderHarness) -> None:
        resources = [harness.create(RUNNING), harness.create(RUNNING)]
        results = harness.provider.stop(resources)
        assert [r.kind for r in results] == [ResultKind.DONE, ResultKind.DONE]
        assert [r.state for r in results] == [STOPPED, STOPPED]
        assert [harness.state_of(r) for r in resources] == [STOPPED, STOPPED]

    @pytest.mark.parametrize(("initial", "verb"), [(STOPPED, "start"), (RUNNING, "stop")])
    def test_acting_twice_is_already_the_second_time_without_an_api_call(
        self, harness: ProviderHarness, initial: ResourceState, verb: str
    ) -> None:
        resource = harness.create(initial)
        act = harness.provider.start if verb == "start" else harness.provider.stop
        assert act([resource])[0].kind is ResultKind.DONE
        before = harness.mutating_calls()
        assert (verb, resource.id) in before

        again = act([resource])

        assert again[0].kind is ResultKind.ALREADY
        assert again[0].ok
        assert harness.mutating_calls() == before

    def test_resources_already_there_cause_no_api_call(self, harness: ProviderHarness) -> None:
        running = [harness.create(RUNNING), harness.create(RUNNING)]
        results = harness.provider.start(running)
        assert [r.kind for r in results] == [ResultKind.ALREADY, ResultKind.ALREADY]
        assert [r.state for r in results] == [RUNNING, RUNNING]
        assert harness.mutating_calls() == []

    def test_nothing_to_do_for_no_resources(self, harness: ProviderHarness) -> None:
        assert list(harness.provider.start([])) == []
        assert list(harness.provider.stop([])) == []
        assert list(harness.provider.describe([])) == []
        assert harness.mutating_calls() == []

    def test_one_result_per_resource_in_input_order(self, harness: ProviderHarness) -> None:
        resources = [
            harness.create(STOPPED),
            harness.create(RUNNING),
            harness.create(STOPPED),
            harness.create(RUNNING),
            harness.create(STOPPED),
        ]
        harness.inject(resources[2], "fail-start")
        results = harness.provider.start(resources)
        assert [r.resource for r in results] == resources
        assert [r.kind for r in results] == [
            ResultKind.DONE,
            ResultKind.ALREADY,
            ResultKind.FAILED,
            ResultKind.ALREADY,
            ResultKind.DONE,
        ]

    @pytest.mark.parametrize(
        ("initial", "verb", "fault"),
        [(STOPPED, "start", "fail-start"), (RUNNING, "stop", "fail-stop")],
    )
    def test_a_failing_resource_does_not_block_the_others(
        self, harness: ProviderHarness, initial: ResourceState, verb: str, fault: str
    ) -> None:
        resources = [harness.create(initial) for _ in range(3)]
        harness.inject(resources[1], fault)
        act = harness.provider.start if verb == "start" else harness.provider.stop
        results = act(resources)
        wanted = RUNNING if verb == "start" else STOPPED
        assert [r.kind for r in results] == [ResultKind.DONE, ResultKind.FAILED, ResultKind.DONE]
        failed = results[1]
        assert not failed.ok
        assert failed.error is ErrorKind.PERMISSION_DENIED
        assert failed.message  # says what to grant
        assert failed.state is initial
        assert [harness.state_of(r) for r in resources] == [wanted, initial, wanted]

    def test_final_state_is_verified(self, harness: ProviderHarness) -> None:
        resources = [harness.create(STOPPED), harness.create(STOPPED)]
        harness.inject(resources[0], "fallback")
        results = harness.provider.start(resources)
        fell_back, fine = results
        assert fell_back.kind is ResultKind.FAILED
        assert fell_back.state is STOPPED
        assert fell_back.error is not None
        assert fell_back.message
        assert fine.kind is ResultKind.DONE

    def test_a_missing_resource_fails_not_found(self, harness: ProviderHarness) -> None:
        gone, there = harness.create(STOPPED), harness.create(STOPPED)
        harness.inject(gone, "missing")
        results = harness.provider.start([gone, there])
        assert results[0].kind is ResultKind.FAILED
        assert results[0].error is ErrorKind.NOT_FOUND
        assert results[0].state is ResourceState.MISSING
        assert results[0].message
        assert results[1].kind is ResultKind.DONE

    def test_drift_is_noticed(self, harness: ProviderHarness) -> None:
        resource = harness.create(RUNNING)
        harness.set_state(resource, STOPPED)  # someone stopped it from the console
        assert harness.provider.describe([resource])[0].state is STOPPED
        assert harness.provider.start([resource])[0].kind is ResultKind.DONE
        harness.set_state(resource, STOPPED)
        harness.set_state(resource, RUNNING)
        assert harness.provider.start([resource])[0].kind is ResultKind.ALREADY

    # -- progress and concurrency ------------------------------------------------------------

    def test_progress_is_reported_once_per_resource(self, harness: ProviderHarness) -> None:
        resources = [harness.create(STOPPED) for _ in range(4)] + [harness.create(RUNNING)]
        harness.inject(resources[0], "fail-start")
        progress = ProgressRecorder()
        results = harness.provider.start(resources, progress)
        assert sorted(ids([r.resource for r in progress.results])) == sorted(ids(resources))
        assert {r.resource.id: r for r in progress.results} == {r.resource.id: r for r in results}

    def test_resources_are_acted_on_concurrently(self, timed_harness: ProviderHarness) -> None:
        harness = timed_harness
        count = self.concurrency_count
        resources = [harness.create(STOPPED) for _ in range(count)]
        began = time.monotonic()
        results = harness.provider.start(resources)
        elapsed = time.monotonic() - began
        assert all(r.kind is ResultKind.DONE for r in results)
        serial = count * harness.transition_seconds
        assert elapsed / serial < self.concurrency_ratio, (elapsed, serial)

    # -- describe and discover ---------------------------------------------------------------

    def test_describe_reports_each_state_in_input_order(self, harness: ProviderHarness) -> None:
        running, stopped, gone = (
            harness.create(RUNNING),
            harness.create(STOPPED),
            harness.create(RUNNING),
        )
        harness.inject(gone, "missing")
        statuses = harness.provider.describe([stopped, gone, running])
        assert [s.resource for s in statuses] == [stopped, gone, running]
        assert [s.state for s in statuses] == [STOPPED, ResourceState.MISSING, RUNNING]

    def test_discover_by_tags_and_regions(self, harness: ProviderHarness) -> None:
        team = f"t-{uuid.uuid4().hex[:8]}"  # the cloud may hold other resources
        here, there = harness.regions
        a = harness.create(RUNNING, region=here, tags={"team": team})
        b = harness.create(STOPPED, region=there, tags={"team": team, "env": "qa"})
        harness.create(RUNNING, region=here, tags={"team": "other"})
        name = harness.provider.name

        def found(selector: Selector) -> set[str]:
            return {r.id for r in harness.provider.discover(selector)}

        assert found(Selector(name, tags={"team": team})) == {a.id, b.id}
        assert found(Selector(name, regions=[here], tags={"team": team})) == {a.id}
        assert found(Selector(name, regions=[here, there], tags={"team": team})) == {a.id, b.id}
        assert found(Selector(name, tags={"team": team, "env": "qa"})) == {b.id}
        assert found(Selector(name, tags={"team": team, "env": "prod"})) == set()
        discovered = {
            r.id: r for r in harness.provider.discover(Selector(name, tags={"team": team}))
        }
        assert discovered[b.id].region == there
        assert ("env", "qa") in discovered[b.id].tags
