"""The GCP provider: the shared contract, then GCP specifics — all with the real
google-cloud-compute REST clients against the local Compute Engine stand-in (fake_gce)."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator, Mapping
from typing import Any

import google.auth
import pytest
from contract import ProviderContract
from fake_gce import FakeGce
from google.auth.credentials import AnonymousCredentials
from google.auth.exceptions import DefaultCredentialsError

from nightops_core.errors import ProviderError
from nightops_core.model import Money, Resource, ResourceState, Selector
from nightops_core.ports import CloudProvider, ErrorKind, ResultKind
from nightops_providers.gcp import GcpProvider

RUNNING = ResourceState.RUNNING
STOPPED = ResourceState.STOPPED
PROJECT = "proj-1"
ZONE = "us-central1-a"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

_STATUS_STATES = {
    "RUNNING": RUNNING,
    "TERMINATED": STOPPED,
    "SUSPENDED": STOPPED,
    "STAGING": ResourceState.STARTING,
    "STOPPING": ResourceState.STOPPING,
}


@pytest.fixture(autouse=True)
def only_local_hosts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Fail any connection to a host other than 127.0.0.1 (e.g. compute.googleapis.com,
    which ExtendedOperation.result() would poll) and remember who tried."""
    attempts: list[str] = []
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("127.0.0.1", "localhost", b"127.0.0.1"):
            attempts.append(str(host))
            raise OSError(f"test: no connections to {host}")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    yield attempts
    assert attempts == [], f"connections to non-local hosts attempted: {attempts}"


def make_provider(fake: FakeGce, **options: Any) -> GcpProvider:
    defaults: dict[str, Any] = {
        "project": PROJECT,
        "credentials": AnonymousCredentials(),
        "api_endpoint": fake.url,
        "poll_seconds": 0.001,
        "backoff_seconds": 0.001,
        "timeout_seconds": 10,
    }
    defaults.update(options)
    return GcpProvider(**defaults)


class GcpHarness:
    """The contract harness: the provider against a fresh fake Compute Engine."""

    regions = (ZONE, "europe-west1-b")

    def __init__(self, *, real_time: bool) -> None:
        self._count = 0
        self.transition_seconds = 0.1 if real_time else 0.0
        self.fake = FakeGce(transition_seconds=self.transition_seconds, wait_cap=1.0)
        self.provider: CloudProvider = make_provider(self.fake, poll_seconds=0.01)

    def create(
        self,
        state: ResourceState,
        *,
        region: str | None = None,
        tags: Mapping[str, str] | None = None,
        name: str = "",
    ) -> Resource:
        self._count += 1
        vm = f"vm-{self._count:04d}"
        zone = region or self.regions[0]
        status = "RUNNING" if state is RUNNING else "TERMINATED"
        self.fake.add_instance(PROJECT, zone, vm, status, labels=tags)
        return Resource("gcp", "gce", vm, name=name, region=zone, tags=tags or {})

    def inject(self, resource: Resource, fault: str) -> None:
        self.fake.inject(PROJECT, resource.region, resource.id, fault)

    def set_state(self, resource: Resource, state: ResourceState) -> None:
        status = "RUNNING" if state is RUNNING else "TERMINATED"
        self.fake.set_status(PROJECT, resource.region, resource.id, status)

    def state_of(self, resource: Resource) -> ResourceState:
        return _STATUS_STATES[self.fake.status(PROJECT, resource.region, resource.id)]

    def mutating_calls(self) -> list[tuple[str, str]]:
        calls = []
        for request in self.fake.requests:
            parts = request.path.split("/")
            if request.method == "POST" and parts[-1] in ("start", "stop", "resume", "suspend"):
                verb = "start" if parts[-1] in ("start", "resume") else "stop"
                calls.append((verb, parts[-2]))
        return calls

    def close(self) -> None:
        assert isinstance(self.provider, GcpProvider)
        self.provider.close()
        self.fake.close()


class TestGcpContract(ProviderContract):
    def make_harness(self, *, real_time: bool) -> GcpHarness:
        return GcpHarness(real_time=real_time)


# -- GCP specifics ------------------------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeGce]:
    server = FakeGce()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def provider(fake: FakeGce) -> Iterator[GcpProvider]:
    made = make_provider(fake)
    try:
        yield made
    finally:
        made.close()


def vm(name: str, zone: str = ZONE, **tags: str) -> Resource:
    return Resource("gcp", "gce", name, region=zone, tags=tags)


def posts(fake: FakeGce, suffix: str) -> list[Any]:
    return [r for r in fake.requests if r.method == "POST" and r.path.endswith(suffix)]


def test_missing_credentials_are_a_provider_error_saying_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_adc(**_: Any) -> Any:
        raise DefaultCredentialsError("Your default credentials were not found.")

    monkeypatch.setattr(google.auth, "default", no_adc)
    provider = GcpProvider(project=PROJECT)  # constructing asks nothing yet
    with pytest.raises(ProviderError, match="gcloud auth application-default login"):
        provider.describe([vm("vm-1")])


def test_start_stop_describe(fake: FakeGce, provider: GcpProvider) -> None:
    fake.add_instance(PROJECT, ZONE, "vm-1", "TERMINATED")
    fake.add_instance(PROJECT, "europe-west3-b", "vm-2", "RUNNING")
    resources = [vm("vm-1"), vm("vm-2", "europe-west3-b")]
    assert [s.state for s in provider.describe(resources)] == [STOPPED, RUNNING]
    started = provider.start(resources)
    assert [r.kind for r in started] == [ResultKind.DONE, ResultKind.ALREADY]
    stopped = provider.stop(resources)
    assert [r.kind for r in stopped] == [ResultKind.DONE, ResultKind.DONE]
    assert fake.status(PROJECT, ZONE, "vm-1") == "TERMINATED"
    assert [r.kind for r in provider.stop(resources)] == [ResultKind.ALREADY] * 2


def test_operations_are_polled_through_our_client_on_the_same_endpoint(
    fake: FakeGce, only_local_hosts: list[str]
) -> None:
    fake.transition_seconds = 0.05
    fake.wait_cap = 0.01  # several waits per operation
    fake.add_instance(PROJECT, ZONE, "vm-1", "TERMINATED")
    provider = make_provider(fake)
    try:
        (result,) = provider.start([vm("vm-1")])
    finally:
        provider.close()
    assert result.kind is ResultKind.DONE
    waits = [r for r in fake.requests if re.search(r"/zones/[^/]+/operations/[^/]+/wait$", r.path)]
    assert len(waits) >= 2
    assert {r.host for r in fake.requests} == {f"127.0.0.1:{fake.server.port}"}
    assert only_local_hosts == []


def test_every_mutation_carries_a_uuid4_request_id(fake: FakeGce, provider: GcpProvider) -> None:
    fake.add_instance(PROJECT, ZONE, "vm-1", "TERMINATED")
    provider.start([vm("vm-1")])
    provider.stop([vm("vm-1")])
    ids = [request_id for _, _, request_id in fake.mutations]
    assert len(ids) == 2
    assert all(UUID.match(i) for i in ids)
    assert ids[0] != ids[1]


def test_a_retried_start_reuses_its_request_id_and_does_not_act_twice(
    fake: FakeGce, provider: GcpProvider
) -> None:
    fake.add_instance(PROJECT, ZONE, "vm-1", "TERMINATED")
    # The start takes effect but its response is lost (a 503): NightOps retries.
    fake.fail_next("POST", r"/instances/vm-1/start$", 503, act_first=True)
    (result,) = provider.start([vm("vm-1")])
    assert result.kind is ResultKind.DONE
    sent = posts(fake, "/vm-1/start")
    assert len(sent) == 2
    assert sent[0].query["requestId"] == sent[1].query["requestId"]
    assert fake.acted == [("start", "vm-1")]


@pytest.mark.parametrize(
    ("status", "reason"), [(429, "rateLimitExceeded"), (403, "rateLimitExceeded")]
)
def test_throttling_honours_retry_after(fake: FakeGce, status: int, reason: str) -> None:
    fake.add_instance(PROJECT, ZONE, "vm-1", "TERMINATED")
    fake.fail_next("POST", r"/start$", status, times=2, retry_after="7", reason=reason)
    pauses: list[float] = []
    provider = make_provider(fake, sleep=pauses.append)
    try:
        (result,) = provider.start([vm("vm-1")])
    finally:
        provider.close()
    assert result.kind is ResultKind.DONE
    assert len(posts(fake, "/start")) == 3
    assert pauses.count(7.0) == 2


def test_throttling_is_bounded(fake: FakeGce) -> None:
    fake.add_instance(PROJECT, ZONE, "vm-1", "TERMINATED")
    fake.fail_next("POST", r"/start$", 429, times=10)
    pauses: list[float] = []
    provider = make_provider(fake, sleep=pauses.append, max_attempts=3, backoff_seconds=0.5)
    try:
        (result,) = provider.start([vm("vm-1")])
    finally:
        provider.close()
    assert result.error is ErrorKind.THROTTLED
    assert result.state is STOPPED
    assert "rate-limited after 3 attempts" in result.message
    assert len(posts(fake, "/start")) == 3
    assert len(pauses) == 2
    assert 0 <= pauses[0] <= 0.5
    assert 0 <= pauses[1] <= 1.0  # full jitter below the doubled step


def test_server_errors_are_retried(fake: FakeGce, provider: GcpProvider) -> None:
    fake.add_instance(PROJECT, ZONE, "vm-1", "RUNNING")
    fake.fail_next("GET", r"/instances/vm-1$", 503)
    assert provider.describe([vm("vm-1")])[0].state is RUNNING


def test_permission_denied_names_the_permission_and_the_role(
    fake: FakeGce, provider: GcpProvider
) -> None:
    fake.add_instance(PROJECT, ZONE, "vm-1", "TERMINATED")
    fake.inject(PROJECT, ZONE, "vm-1", "fail-start")
    (result,) = provider.start([vm("vm-1")])
    assert result.error is ErrorKind.PERMISSION_DENIED
    assert result.state is STOPPED
    assert result.message == (
        f"missing permission compute.instances.start on projects/{PROJECT}/zones/{ZONE}/"
        "instances/vm-1; grant it to the NightOps service account (see docs/gcp-role.yaml)"
    )


def test_not_found(fake: FakeGce, provider: GcpProvider) -> None:
    (status,) = provider.describe([vm("ghost")])
    assert status.state is ResourceState.MISSING
    (result,) = provider.stop([vm("ghost")])
    assert result.error is ErrorKind.NOT_FOUND
    assert result.state is ResourceState.MISSING
    assert "remove it from the collection" in result.message


def test_wrong_state_409(fake: FakeGce, provider: GcpProvider) -> None:
    fake.add_instance(PROJECT, ZONE, "vm-1", "RUNNING")
    fake.fail_next("POST", r"/stop$", 409)
    (result,) = provider.stop([vm("vm-1")])
    assert result.error is ErrorKind.WRONG_STATE
    assert result.state is RUNNING


def test_capacity_errors_of_the_operation(fake: FakeGce, provider: GcpProvider) -> None:
    fake.add_instance(PROJECT, ZONE, "vm-1", "TERMINATED")
    fake.inject(PROJECT, ZONE, "vm-1", "capacity")
    (result,) = provider.start([vm("vm-1")])
    assert result.error is ErrorKind.CAPACITY
    assert "ZONE_RESOURCE_POOL_EXHAUSTED" in result.message
    assert "another zone" in result.message


def test_an_instance_that_never_gets_there_times_out(fake: FakeGce) -> None:
    fake.wait_cap = 0.02
    fake.add_instance(PROJECT, ZONE, "vm-1", "TERMINATED")
    fake.inject(PROJECT, ZONE, "vm-1", "stuck")
    provider = make_provider(fake, timeout_seconds=0.3, poll_seconds=0.02)
    began = time.monotonic()
    try:
        (result,) = provider.start([vm("vm-1")])
    finally:
        provider.close()
    assert result.error is ErrorKind.TIMEOUT
    assert result.kind is ResultKind.FAILED
    assert "within 0.3 s" in result.message
    assert time.monotonic() - began < 3


def test_suspend_by_tag_and_resume_on_start(fake: FakeGce, provider: GcpProvider) -> None:
    fake.add_instance(PROJECT, ZONE, "vm-1", "RUNNING")
    resource = vm("vm-1", suspend="true")
    assert provider.stop([resource])[0].kind is ResultKind.DONE
    assert fake.status(PROJECT, ZONE, "vm-1") == "SUSPENDED"
    (status,) = provider.describe([resource])
    assert status.state is STOPPED
    assert "suspended" in status.detail
    assert provider.stop([resource])[0].kind is ResultKind.ALREADY
    assert provider.start([vm("vm-1")])[0].kind is ResultKind.DONE
    assert [p.path.rsplit("/", 1)[1] for p in fake.requests if p.method == "POST"] == [
        "suspend",
        "wait",
        "resume",
        "wait",
    ]


def test_suspend_option(fake: FakeGce) -> None:
    fake.add_instance(PROJECT, ZONE, "vm-1", "RUNNING")
    provider = make_provider(fake, suspend=True)
    try:
        provider.stop([vm("vm-1")])
    finally:
        provider.close()
    assert fake.status(PROJECT, ZONE, "vm-1") == "SUSPENDED"


def test_discover_by_labels_across_zones(fake: FakeGce, provider: GcpProvider) -> None:
    fake.add_instance(PROJECT, ZONE, "a", labels={"team": "x"}, machine_type="e2-medium")
    fake.add_instance(PROJECT, "europe-west1-b", "b", "TERMINATED", labels={"team": "x"})
    fake.add_instance(PROJECT, ZONE, "c", labels={"team": "y"})
    fake.add_instance(
        PROJECT,
        ZONE,
        "web-abcd",
        labels={"team": "x"},
        created_by=f"projects/1/zones/{ZONE}/instanceGroupManagers/web",
    )
    fake.add_group(PROJECT, ZONE, "web", 2, labels={"team": "x", "restore_size": "2"})

    def found(**kwargs: Any) -> set[tuple[str, str]]:
        return {(r.kind, r.id) for r in provider.discover(Selector("gcp", **kwargs))}

    assert found(tags={"team": "x"}) == {("gce", "a"), ("gce", "b"), ("mig", "web")}
    assert found(tags={"team": "x"}, kinds=["gce"], regions=["europe-west1"]) == {("gce", "b")}
    assert found(tags={"team": "x"}, kinds=["gce"], regions=[ZONE]) == {("gce", "a")}
    (a,) = list(provider.discover(Selector("gcp", tags={"team": "y"})))
    assert (a.region, a.account, a.size) == (ZONE, PROJECT, "e2-medium")
    assert a.hourly_price == Money("0.033503")
    filters = {r.query.get("filter") for r in fake.requests if "aggregated/instances" in r.path}
    assert '(labels.team = "x")' in filters
    with pytest.raises(ProviderError, match="unknown kind 'vm'"):
        provider.discover(Selector("gcp", kinds=["vm"]))


def test_discovery_failures_are_provider_errors(fake: FakeGce, provider: GcpProvider) -> None:
    fake.fail_next("GET", r"/aggregated/instances$", 403)
    with pytest.raises(ProviderError, match=r"missing permission compute\.instances\.list"):
        provider.discover(Selector("gcp", kinds=["gce"]))


def test_mig_resizes_to_zero_and_back_to_restore_size(fake: FakeGce, provider: GcpProvider) -> None:
    fake.add_group(PROJECT, ZONE, "web", 3)
    group = Resource("gcp", "mig", "web", region=ZONE, tags={"restore_size": "3"})
    assert provider.describe([group])[0].state is RUNNING
    assert provider.stop([group])[0].kind is ResultKind.DONE
    assert fake.group_size(PROJECT, ZONE, "web") == 0
    assert provider.describe([group])[0].state is STOPPED
    assert provider.stop([group])[0].kind is ResultKind.ALREADY
    assert provider.start([group])[0].kind is ResultKind.DONE
    assert fake.group_size(PROJECT, ZONE, "web") == 3
    resizes = posts(fake, "/resize")
    assert [r.query["size"] for r in resizes] == ["0", "3"]
    assert all(UUID.match(r.query["requestId"]) for r in resizes)


def test_a_mig_without_restore_size_is_not_stopped(fake: FakeGce, provider: GcpProvider) -> None:
    fake.add_group(PROJECT, ZONE, "web", 4)
    group = Resource("gcp", "mig", "web", region=ZONE)
    assert "no restore_size tag" in provider.describe([group])[0].detail
    (result,) = provider.stop([group])
    assert result.error is ErrorKind.UNSUPPORTED
    assert 'restore_size = "<size>"' in result.message
    assert "it has 4 now" in result.message
    assert posts(fake, "/resize") == []


def test_unsupported_kinds_and_paths(fake: FakeGce, provider: GcpProvider) -> None:
    fake.add_instance("other", "europe-west3-a", "vm-9", "RUNNING")
    results = provider.stop(
        [
            Resource("gcp", "cloudsql", "db"),
            Resource("gcp", "gce", "vm-1"),  # no zone
            Resource("gcp", "gce", "projects/other/zones/europe-west3-a/instances/vm-9"),
        ]
    )
    assert [r.error for r in results] == [ErrorKind.UNSUPPORTED, ErrorKind.UNSUPPORTED, None]
    assert "use gce or mig" in results[0].message
    assert fake.status("other", "europe-west3-a", "vm-9") == "TERMINATED"


def test_in_flight_calls_are_bounded(fake: FakeGce) -> None:
    fake.server.latency = 0.02
    for n in range(12):
        fake.add_instance(PROJECT, ZONE, f"vm-{n}", "TERMINATED")
    provider = make_provider(fake, max_in_flight=3)
    try:
        results = provider.start([vm(f"vm-{n}") for n in range(12)])
    finally:
        provider.close()
    assert all(r.kind is ResultKind.DONE for r in results)
    assert 2 <= fake.server.peak_in_flight <= 3


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="max_in_flight must be a whole number >= 1"):
        GcpProvider(max_in_flight=0)
    with pytest.raises(TypeError, match="suspend must be true or false"):
        GcpProvider(suspend="yes")  # type: ignore[arg-type]
