"""The sandbox provider: the shared contract, then what only the sandbox simulates."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest
from contract import FakeTime, ProgressRecorder, ProviderContract

from nightops_core.errors import ConfigError, ProviderError
from nightops_core.model import Resource, ResourceState, Selector
from nightops_core.ports import CloudProvider, ErrorKind, ResultKind
from nightops_providers import SandboxProvider
from nightops_providers.sandbox import SandboxCall

RUNNING = ResourceState.RUNNING
STOPPED = ResourceState.STOPPED
STARTING = ResourceState.STARTING
STOPPING = ResourceState.STOPPING


class SandboxHarness:
    """The contract harness: the sandbox is its own stand-in."""

    regions = ("eu-west-1", "us-east-1")

    def __init__(self, *, real_time: bool) -> None:
        self._count = 0
        if real_time:
            self.transition_seconds = 0.1
            self.provider = SandboxProvider(
                transition_seconds=self.transition_seconds, poll_seconds=0.01, timeout_seconds=5
            )
        else:
            self.transition_seconds = 0.4
            self.time = FakeTime()
            self.provider = SandboxProvider(clock=self.time.monotonic, sleep=self.time.sleep)

    def create(
        self,
        state: ResourceState,
        *,
        region: str | None = None,
        tags: Mapping[str, str] | None = None,
        name: str = "",
    ) -> Resource:
        self._count += 1
        resource = Resource(
            "sandbox",
            "ec2",
            f"i-{self._count:04d}",
            name=name,
            region=region or self.regions[0],
            tags=tags or {},
        )
        self.provider.add(resource, state)
        return resource

    def inject(self, resource: Resource, fault: str) -> None:
        self.provider.inject(resource, fault)

    def set_state(self, resource: Resource, state: ResourceState) -> None:
        self.provider.set_state(resource, state)

    def state_of(self, resource: Resource) -> ResourceState:
        return self.provider.state_of(resource)

    def mutating_calls(self) -> list[tuple[str, str]]:
        return [
            (call.op, rid)
            for call in self.provider.calls
            if call.op in ("start", "stop")
            for rid in call.resource_ids
        ]

    def close(self) -> None:
        pass


class TestSandboxContract(ProviderContract):
    def make_harness(self, *, real_time: bool) -> SandboxHarness:
        return SandboxHarness(real_time=real_time)


# -- sandbox-specific ---------------------------------------------------------------------------


def vm(rid: str, kind: str = "ec2", region: str = "eu-west-1", **tags: str) -> Resource:
    return Resource("sandbox", kind, rid, region=region, tags=tags)


def stopped(rid: str, kind: str = "ec2") -> Resource:
    return vm(rid, kind, **{"sandbox:state": "stopped"})


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


def sandbox(clock: FakeTime, **options: Any) -> SandboxProvider:
    return SandboxProvider(clock=clock.monotonic, sleep=clock.sleep, seed=7, **options)


def ops(provider: SandboxProvider, *names: str) -> list[SandboxCall]:
    return [call for call in provider.calls if call.op in names]


def test_is_a_cloud_provider() -> None:
    provider = SandboxProvider()
    assert isinstance(provider, CloudProvider)
    assert provider.name == "sandbox"
    assert SandboxProvider(name="demo").name == "demo"


def test_importing_starts_nothing_and_imports_no_sdk() -> None:
    code = (
        "import sys, threading, nightops_providers\n"
        "sdks = {'boto3', 'botocore', 'google', 'azure'} & set(sys.modules)\n"
        "assert not sdks, sdks\n"
        "assert threading.active_count() == 1\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


class TestInitialState:
    def test_unknown_resources_are_created_running_by_default(self, clock: FakeTime) -> None:
        provider = sandbox(clock)
        (status,) = provider.describe([vm("i-1")])
        assert status.state is RUNNING

    def test_the_state_tag_sets_the_initial_state(self, clock: FakeTime) -> None:
        provider = sandbox(clock)
        statuses = provider.describe([stopped("i-1"), vm("i-2", **{"sandbox:state": "Running"})])
        assert [s.state for s in statuses] == [STOPPED, RUNNING]

    def test_a_bad_state_tag_is_an_error_naming_the_resource(self, clock: FakeTime) -> None:
        with pytest.raises(ProviderError, match=r"i-1 has tag sandbox:state='paused'"):
            sandbox(clock).describe([vm("i-1", **{"sandbox:state": "paused"})])

    def test_the_first_sight_wins(self, clock: FakeTime) -> None:
        provider = sandbox(clock)
        provider.describe([vm("i-1")])
        assert provider.describe([stopped("i-1")])[0].state is RUNNING

    def test_a_fault_injected_by_id_before_first_sight_applies(self, clock: FakeTime) -> None:
        provider = sandbox(clock)
        provider.inject("i-1", "fail-start")
        (result,) = provider.start([stopped("i-1")])
        assert result.error is ErrorKind.PERMISSION_DENIED
        assert result.state is STOPPED


class TestFaults:
    def test_fail_start_names_the_missing_permission(self, clock: FakeTime) -> None:
        provider = sandbox(clock)
        (result,) = provider.start(
            [vm("i-123", **{"sandbox:state": "stopped", "sandbox:fault": "fail-start"})]
        )
        assert result.kind is ResultKind.FAILED
        assert result.error is ErrorKind.PERMISSION_DENIED
        assert result.message == (
            "sandbox: not allowed to start i-123 (missing sandbox:StartInstances); "
            "grant it to the NightOps role"
        )

    def test_fail_stop_of_a_database_names_its_permission(self, clock: FakeTime) -> None:
        provider = sandbox(clock)
        db = Resource(
            "sandbox", "rds", "staging-db", name="rds-primary", tags={"sandbox:fault": "fail-stop"}
        )
        (result,) = provider.stop([db])
        assert result.error is ErrorKind.PERMISSION_DENIED
        assert "stop rds-primary (staging-db)" in result.message
        assert "sandbox:StopDBInstance" in result.message
        assert provider.start([db])[0].kind is ResultKind.ALREADY  # only stop is refused

    def test_fallback_is_reported_with_its_reason(self, clock: FakeTime) -> None:
        provider = sandbox(clock)
        resource = vm("i-1", **{"sandbox:state": "stopped", "sandbox:fault": "fallback"})
        (result,) = provider.start([resource])
        assert result.kind is ResultKind.FAILED
        assert result.error is ErrorKind.WRONG_STATE
        assert result.state is STOPPED
        assert "was accepted but it ended stopped, not running" in result.message
        assert "kms:CreateGrant" in result.message
        assert [c.outcome for c in ops(provider, "start")] == ["ok"]
        assert "kms:CreateGrant" in provider.describe([resource])[0].detail

    def test_stuck_times_out_after_timeout_seconds(self, clock: FakeTime) -> None:
        provider = sandbox(clock, timeout_seconds=5)
        resource = stopped("i-1")
        provider.inject(resource, "stuck")
        began = clock.monotonic()
        (result,) = provider.start([resource])
        waited = clock.monotonic() - began
        assert result.kind is ResultKind.FAILED
        assert result.error is ErrorKind.TIMEOUT
        assert result.state is STARTING
        assert "did not finish starting within 5 s" in result.message
        assert 5 <= waited < 6
        assert provider.describe([resource])[0].state is STARTING

    def test_clearing_stuck_lets_the_transition_finish(self, clock: FakeTime) -> None:
        provider = sandbox(clock, timeout_seconds=1)
        resource = stopped("i-1")
        provider.inject(resource, "stuck")
        provider.start([resource])
        provider.clear_faults(resource)
        clock.sleep(0.4)
        assert provider.state_of(resource) is RUNNING

    def test_missing(self, clock: FakeTime) -> None:
        provider = sandbox(clock)
        resource = vm("i-1", team="a", **{"sandbox:fault": "missing"})
        (status,) = provider.describe([resource])
        assert status.state is ResourceState.MISSING
        for act in (provider.start, provider.stop):
            (result,) = act([resource])
            assert result.error is ErrorKind.NOT_FOUND
            assert "remove it from the collection" in result.message
        assert ops(provider, "start", "stop") == []
        assert provider.discover(Selector("sandbox", tags={"team": "a"})) == []

    def test_several_faults_in_one_tag(self, clock: FakeTime) -> None:
        provider = sandbox(clock)
        resource = vm("i-1", **{"sandbox:fault": "fail-stop, throttle:1"})
        (result,) = provider.stop([resource])
        assert result.error is ErrorKind.PERMISSION_DENIED
        assert [c.outcome for c in ops(provider, "stop")] == ["throttled", "denied"]

    def test_unknown_faults_are_refused(self, clock: FakeTime) -> None:
        provider = sandbox(clock)
        with pytest.raises(ValueError, match="unknown sandbox fault 'explode'; use one of"):
            provider.inject("i-1", "explode")
        with pytest.raises(ProviderError, match="i-2 has tag sandbox:fault"):
            provider.describe([vm("i-2", **{"sandbox:fault": "throttle:x"})])

    def test_clear_faults_of_everything(self, clock: FakeTime) -> None:
        provider = sandbox(clock)
        resources = [stopped("i-1"), stopped("i-2")]
        provider.inject("i-1", "fail-start")
        provider.inject("i-2", "missing")
        provider.clear_faults()
        assert all(r.kind is ResultKind.DONE for r in provider.start(resources))


class TestThrottling:
    def test_throttled_calls_are_retried_with_growing_backoff(self, clock: FakeTime) -> None:
        provider = sandbox(clock, backoff_seconds=0.1, transition_seconds=0)
        resource = stopped("i-1")
        provider.inject(resource, "throttle:3")
        (result,) = provider.start([resource])
        assert result.kind is ResultKind.DONE
        assert [c.outcome for c in ops(provider, "start")] == ["throttled"] * 3 + ["ok"]
        first, second, third = clock.sleeps[:3]  # the backoff pauses, jittered
        assert 0.05 <= first <= 0.1
        assert 0.1 <= second <= 0.2
        assert 0.2 <= third <= 0.4

    def test_jitter_is_reproducible_with_a_seed(self) -> None:
        def pauses() -> list[float]:
            clock = FakeTime()
            provider = sandbox(clock, transition_seconds=0)
            provider.inject("i-1", "throttle:3")
            provider.start([stopped("i-1")])
            return clock.sleeps

        assert pauses() == pauses()

    def test_retries_are_bounded(self, clock: FakeTime) -> None:
        provider = sandbox(clock, max_attempts=3)
        resource = stopped("i-1")
        provider.inject(resource, "throttle:10")
        (result,) = provider.start([resource])
        assert result.kind is ResultKind.FAILED
        assert result.error is ErrorKind.THROTTLED
        assert result.state is STOPPED
        assert "still throttled after 3 attempts" in result.message
        assert [c.outcome for c in ops(provider, "start")] == ["throttled"] * 3
        assert provider.state_of(resource) is STOPPED

    def test_token_bucket_limits_the_call_rate(self, clock: FakeTime) -> None:
        # One token, refilled once in 1000 s: one start gets through, the others give up.
        provider = sandbox(clock, requests_per_second=0.001, max_attempts=3, backoff_seconds=0.01)
        results = provider.start([stopped(f"i-{n}") for n in range(3)])
        kinds = sorted(r.kind.value for r in results)
        assert kinds == ["done", "failed", "failed"]
        assert {r.error for r in results if not r.ok} == {ErrorKind.THROTTLED}
        assert len(ops(provider, "start")) == 1 + 2 * 3

    def test_throttled_bursts_get_through_with_backoff(self, clock: FakeTime) -> None:
        # A burst of 2, one token per 10 s: the other starts wait for tokens, backing off.
        provider = sandbox(clock, requests_per_second=0.1, burst=2, max_attempts=10)
        resources = [stopped(f"i-{n}") for n in range(6)]
        results = provider.start(resources)
        assert all(r.kind is ResultKind.DONE for r in results)
        outcomes = [c.outcome for c in ops(provider, "start")]
        assert outcomes.count("ok") == 6
        assert outcomes.count("throttled") > 0

    def test_describe_is_not_rate_limited(self, clock: FakeTime) -> None:
        provider = sandbox(clock, requests_per_second=0.001)
        for _ in range(5):
            provider.describe([vm("i-1")])
        assert {c.outcome for c in provider.calls} == {"ok"}


class TestTransitions:
    def test_describe_shows_the_transition_while_it_runs(self) -> None:
        clock = FakeTime()
        seen: list[ResourceState] = []
        resource = stopped("i-1")

        def sleep(seconds: float) -> None:  # called by the worker while it waits
            seen.append(provider.describe([resource])[0].state)
            clock.sleep(seconds)

        provider = SandboxProvider(clock=clock.monotonic, sleep=sleep)
        provider.start([resource])
        assert seen[0] is STARTING
        assert provider.describe([resource])[0].state is RUNNING

    def test_a_transition_takes_transition_seconds(self, clock: FakeTime) -> None:
        provider = sandbox(clock, transition_seconds=2)
        provider.set_state("i-1", STOPPING)
        clock.sleep(1.9)
        assert provider.state_of("i-1") is STOPPING
        clock.sleep(0.1)
        assert provider.state_of("i-1") is STOPPED

    def test_a_resource_starting_already_is_awaited_not_started(self, clock: FakeTime) -> None:
        provider = sandbox(clock)
        resource = stopped("i-1")
        provider.set_state(resource, STARTING)  # someone started it from the console
        (result,) = provider.start([resource])
        assert result.kind is ResultKind.DONE
        assert result.state is RUNNING
        assert ops(provider, "start") == []

    def test_a_stopping_resource_is_awaited_then_started(self, clock: FakeTime) -> None:
        provider = sandbox(clock)
        resource = vm("i-1")
        provider.set_state(resource, STOPPING)
        (result,) = provider.start([resource])
        assert result.kind is ResultKind.DONE
        assert [(c.op, c.outcome) for c in ops(provider, "start")] == [("start", "ok")]
        assert provider.state_of(resource) is RUNNING

    def test_drift_via_set_state(self, clock: FakeTime) -> None:
        provider = sandbox(clock)
        resource = stopped("i-1")
        assert provider.start([resource])[0].kind is ResultKind.DONE
        provider.set_state("i-1", STOPPED)
        assert provider.describe([resource])[0].state is STOPPED
        provider.set_state("i-1", RUNNING)
        assert provider.start([resource])[0].kind is ResultKind.ALREADY
        assert len(ops(provider, "start")) == 1

    def test_each_api_call_costs_latency(self, clock: FakeTime) -> None:
        provider = sandbox(clock, latency_seconds=0.25)
        began = clock.monotonic()
        provider.describe([vm("i-1"), vm("i-2")])  # one batched call
        assert clock.monotonic() - began == pytest.approx(0.25)

    def test_calls_are_recorded_and_can_be_cleared(self, clock: FakeTime) -> None:
        provider = sandbox(clock, transition_seconds=0)
        provider.stop([vm("i-1"), vm("i-2")])
        assert provider.calls[0] == SandboxCall("describe", ("i-1", "i-2"), "ok", 1000.0)
        assert sorted(c.resource_ids for c in ops(provider, "stop")) == [("i-1",), ("i-2",)]
        provider.clear_calls()
        assert provider.calls == ()


class TestConcurrency:
    def test_in_flight_work_is_bounded_by_max_in_flight(self) -> None:
        lock = threading.Lock()
        inside: set[str] = set()
        workers: set[str] = set()
        peak = 0

        def sleep(seconds: float) -> None:
            nonlocal peak
            name = threading.current_thread().name
            with lock:
                inside.add(name)
                workers.add(name)
                peak = max(peak, len(inside))
            time.sleep(seconds)
            with lock:
                inside.discard(name)

        provider = SandboxProvider(
            transition_seconds=0.05, poll_seconds=0.01, max_in_flight=3, sleep=sleep
        )
        results = provider.start([stopped(f"i-{n}") for n in range(9)])
        assert all(r.kind is ResultKind.DONE for r in results)
        assert len(workers) == 3
        assert 2 <= peak <= 3

    def test_progress_exceptions_are_logged_and_do_not_break_the_action(
        self, clock: FakeTime, caplog: pytest.LogCaptureFixture
    ) -> None:
        provider = sandbox(clock)

        def progress(result: object) -> None:
            raise RuntimeError("callback bug")

        with caplog.at_level(logging.ERROR, logger="nightops.providers.sandbox"):
            results = provider.start([stopped("i-1"), vm("i-2")], progress)
        assert [r.kind for r in results] == [ResultKind.DONE, ResultKind.ALREADY]
        assert len(caplog.records) == 2
        assert "progress callback failed" in caplog.records[0].getMessage()

    def test_progress_calls_never_overlap(self) -> None:
        active = 0
        overlapped = False
        lock = threading.Lock()
        recorder = ProgressRecorder()

        def progress(result: Any) -> None:
            nonlocal active, overlapped
            with lock:
                active += 1
                overlapped |= active > 1
            time.sleep(0.005)
            recorder(result)
            with lock:
                active -= 1

        provider = SandboxProvider(transition_seconds=0.01, poll_seconds=0.005)
        provider.start([stopped(f"i-{n}") for n in range(6)], progress)
        assert len(recorder.results) == 6
        assert not overlapped


class TestDiscoveryAndSeeding:
    def test_seed_resources_from_config_tables(self, clock: FakeTime) -> None:
        provider = sandbox(
            clock,
            seed_resources=[
                {"id": "i-1", "kind": "ec2", "region": "us-east-1", "tags": {"app": "api"}},
                {
                    "id": "db-1",
                    "kind": "rds",
                    "name": "db",
                    "state": "stopped",
                    "tags": {"app": "api"},
                },
                Resource("sandbox", "ec2", "i-9", tags={"app": "web"}),
            ],
        )
        found = provider.discover(Selector("sandbox", tags={"app": "api"}))
        assert [r.id for r in found] == ["i-1", "db-1"]
        assert provider.state_of("db-1") is STOPPED
        assert found[1].name == "db"
        assert [r.id for r in provider.discover(Selector("sandbox", kinds=["rds"]))] == ["db-1"]
        assert [r.id for r in provider.discover(Selector("sandbox", regions=["us-east-1"]))] == [
            "i-1"
        ]

    @pytest.mark.parametrize(
        ("seed", "message"),
        [
            ({"kind": "ec2"}, r"seed_resources\[0\]: 'id' is required"),
            ({"id": "i-1", "colour": "red"}, r"seed_resources\[0\]: unknown key 'colour'"),
            ({"id": "i-1", "state": "paused"}, r"seed_resources\[0\]\.state"),
            ({"id": "i-1", "tags": {"a": 1}}, r"seed_resources\[0\]\.tags"),
            ("i-1", r"seed_resources\[0\]: expected a table"),
        ],
    )
    def test_bad_seed_resources_are_config_errors(self, seed: object, message: str) -> None:
        with pytest.raises(ConfigError, match=message):
            SandboxProvider(seed_resources=[seed])  # type: ignore[list-item]

    def test_resources_seen_by_describe_are_discoverable(self, clock: FakeTime) -> None:
        provider = sandbox(clock)
        provider.describe([vm("i-1", team="a"), vm("i-2", team="b")])
        assert [r.id for r in provider.discover(Selector("sandbox", tags={"team": "a"}))] == ["i-1"]


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"transition_seconds": -1}, ValueError, "transition_seconds must be a number >= 0"),
        ({"transition_seconds": "fast"}, TypeError, "transition_seconds must be a number >= 0"),
        ({"poll_seconds": 0}, ValueError, "poll_seconds must be a number > 0"),
        ({"max_in_flight": 0}, ValueError, "max_in_flight must be a whole number >= 1"),
        ({"max_in_flight": 2.5}, TypeError, "max_in_flight must be a whole number >= 1"),
        ({"requests_per_second": 0}, ValueError, "requests_per_second must be a number > 0"),
        ({"max_attempts": True}, TypeError, "max_attempts must be a whole number >= 1"),
    ],
)
def test_bad_options_are_refused(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        SandboxProvider(**options)
