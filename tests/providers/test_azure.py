"""The Azure provider: the shared contract, then Azure specifics — all with the real
azure-mgmt-compute client against the local ARM stand-in (fake_arm, over https)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from contract import FakeTime, ProviderContract
from fake_arm import FakeArm

from nightops_core.errors import ProviderError
from nightops_core.model import Money, Resource, ResourceState, Selector
from nightops_core.ports import CloudProvider, ErrorKind, ResultKind
from nightops_providers.azure import BILLED_DETAIL, AzureProvider

RUNNING = ResourceState.RUNNING
STOPPED = ResourceState.STOPPED
SUB = "00000000-0000-0000-0000-000000000001"
RG = "rg-staging"

_POWER_STATES = {
    "running": RUNNING,
    "deallocated": STOPPED,
    "stopped": RUNNING,  # allocated: still billed
    "starting": ResourceState.STARTING,
    "deallocating": ResourceState.STOPPING,
}


class StaticCredential:
    """A credential with get_token only, as azure-core's bearer policy needs."""

    def __init__(self) -> None:
        self.calls = 0

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.calls += 1
        return AccessToken("test-token", int(time.time()) + 3600)


class BrokenCredential:
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        raise ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token")


def make_provider(fake: FakeArm, **options: Any) -> AzureProvider:
    defaults: dict[str, Any] = {
        "subscription_id": SUB,
        "credential": StaticCredential(),
        "base_url": fake.url,
        "connection_verify": fake.ca_path,
        "polling_interval": 0,
        "poll_seconds": 0.001,
        "backoff_seconds": 0.001,
        "timeout_seconds": 10,
    }
    defaults.update(options)
    return AzureProvider(**defaults)


def rid(name: str, group: str = RG) -> str:
    return f"resourceGroups/{group}/{name}"


class AzureHarness:
    """The contract harness: the provider against a fresh fake ARM."""

    regions = ("westeurope", "eastus")

    def __init__(self, *, real_time: bool) -> None:
        self._count = 0
        self.transition_seconds = 0.1 if real_time else 0.0
        self.fake = FakeArm(transition_seconds=self.transition_seconds)
        self.provider: CloudProvider = make_provider(
            self.fake, polling_interval=0.01 if real_time else 0, poll_seconds=0.01
        )

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
        location = region or self.regions[0]
        power = "running" if state is RUNNING else "deallocated"
        self.fake.add(SUB, RG, vm, power, location=location, tags=tags)
        return Resource("azure", "vm", rid(vm), name=name, region=location, tags=tags or {})

    def _name(self, resource: Resource) -> str:
        return resource.id.rsplit("/", 1)[1]

    def inject(self, resource: Resource, fault: str) -> None:
        self.fake.inject(SUB, RG, self._name(resource), fault)

    def set_state(self, resource: Resource, state: ResourceState) -> None:
        power = "running" if state is RUNNING else "deallocated"
        self.fake.set_power(SUB, RG, self._name(resource), power)

    def state_of(self, resource: Resource) -> ResourceState:
        return _POWER_STATES[self.fake.power(SUB, RG, self._name(resource))]

    def mutating_calls(self) -> list[tuple[str, str]]:
        verbs = {"start": "start", "deallocate": "stop", "powerOff": "stop"}
        calls = []
        for request in self.fake.requests:
            parts = request.path.split("/")
            if request.method == "POST" and parts[-1] in verbs:
                calls.append((verbs[parts[-1]], rid(parts[-2], parts[4])))
        return calls

    def close(self) -> None:
        assert isinstance(self.provider, AzureProvider)
        self.provider.close()
        self.fake.close()


class TestAzureContract(ProviderContract):
    def make_harness(self, *, real_time: bool) -> AzureHarness:
        return AzureHarness(real_time=real_time)


# -- Azure specifics ----------------------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeArm]:
    server = FakeArm()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def provider(fake: FakeArm) -> Iterator[AzureProvider]:
    made = make_provider(fake)
    try:
        yield made
    finally:
        made.close()


def vm(name: str, group: str = RG, **tags: str) -> Resource:
    return Resource("azure", "vm", rid(name, group), region="westeurope", tags=tags)


def posts(fake: FakeArm, verb: str) -> list[Any]:
    return [r for r in fake.requests if r.method == "POST" and r.path.endswith(f"/{verb}")]


def test_constructing_creates_no_client_or_credential() -> None:
    provider = AzureProvider(subscription_id=SUB)
    assert provider._clients == {}
    assert provider._credential is None


def test_start_stop_describe_with_a_bearer_token_over_https(
    fake: FakeArm, provider: AzureProvider
) -> None:
    fake.add(SUB, RG, "vm-1", "deallocated")
    fake.add(SUB, RG, "vm-2", "running")
    resources = [vm("vm-1"), vm("vm-2")]
    assert [s.state for s in provider.describe(resources)] == [STOPPED, RUNNING]
    assert [r.kind for r in provider.start(resources)] == [ResultKind.DONE, ResultKind.ALREADY]
    assert [r.kind for r in provider.stop(resources)] == [ResultKind.DONE, ResultKind.DONE]
    assert [r.kind for r in provider.stop(resources)] == [ResultKind.ALREADY] * 2
    assert {r.authorization for r in fake.requests} == {"Bearer test-token"}


def test_an_allocated_but_stopped_vm_is_shown_billed_and_deallocated_on_stop(
    fake: FakeArm, provider: AzureProvider
) -> None:
    fake.add(SUB, RG, "vm-1", "stopped")
    (status,) = provider.describe([vm("vm-1")])
    assert status.state is RUNNING
    assert status.detail == BILLED_DETAIL
    (result,) = provider.stop([vm("vm-1")])
    assert result.kind is ResultKind.DONE
    assert result.state is STOPPED
    assert fake.power(SUB, RG, "vm-1") == "deallocated"
    assert len(posts(fake, "deallocate")) == 1
    assert posts(fake, "powerOff") == []


def test_starting_an_allocated_but_stopped_vm_starts_it(
    fake: FakeArm, provider: AzureProvider
) -> None:
    fake.add(SUB, RG, "vm-1", "stopped")
    (result,) = provider.start([vm("vm-1")])
    assert result.kind is ResultKind.DONE
    assert fake.power(SUB, RG, "vm-1") == "running"


def test_long_running_operations_are_polled(fake: FakeArm) -> None:
    fake.transition_seconds = 0.05
    fake.add(SUB, RG, "vm-1", "running")
    provider = make_provider(fake, polling_interval=0.01)
    try:
        (result,) = provider.stop([vm("vm-1")])
    finally:
        provider.close()
    assert result.kind is ResultKind.DONE
    polls = [r for r in fake.requests if "/operations/" in r.path and "monitor" not in r.query]
    finals = [r for r in fake.requests if "/operations/" in r.path and "monitor" in r.query]
    assert len(polls) >= 2  # InProgress at least once, then Succeeded
    assert len(finals) == 1  # the final GET on the Location URL


def test_throttling_honours_retry_after(fake: FakeArm) -> None:
    fake.add(SUB, RG, "vm-1", "running")
    fake.fail_next("POST", r"/deallocate$", 429, times=2, retry_after="3")
    pauses: list[float] = []
    provider = make_provider(fake, sleep=pauses.append)
    try:
        (result,) = provider.stop([vm("vm-1")])
    finally:
        provider.close()
    assert result.kind is ResultKind.DONE
    assert len(posts(fake, "deallocate")) == 3
    assert pauses.count(3.0) == 2


def test_throttling_is_bounded(fake: FakeArm) -> None:
    fake.add(SUB, RG, "vm-1", "running")
    fake.fail_next("GET", r"/virtualMachines/vm-1$", 429, times=10)
    provider = make_provider(fake, sleep=lambda _: None, max_attempts=4)
    try:
        (result,) = provider.stop([vm("vm-1")])
    finally:
        provider.close()
    assert result.error is ErrorKind.THROTTLED
    assert "after 4 attempts" in result.message
    gets = [r for r in fake.requests if r.path.endswith("/vm-1")]
    assert len(gets) == 4


def test_server_errors_are_retried(fake: FakeArm, provider: AzureProvider) -> None:
    fake.add(SUB, RG, "vm-1", "deallocated")
    fake.fail_next("POST", r"/start$", 503)
    assert provider.start([vm("vm-1")])[0].kind is ResultKind.DONE
    assert len(posts(fake, "start")) == 2


def test_permission_denied_names_the_action_and_the_role(
    fake: FakeArm, provider: AzureProvider
) -> None:
    fake.add(SUB, RG, "vm-1", "deallocated")
    fake.inject(SUB, RG, "vm-1", "fail-start")
    (result,) = provider.start([vm("vm-1")])
    assert result.error is ErrorKind.PERMISSION_DENIED
    assert result.state is STOPPED
    assert result.message == (
        "missing permission Microsoft.Compute/virtualMachines/start/action on "
        f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/"
        "virtualMachines/vm-1; grant it to the NightOps identity (see docs/azure-role.json)"
    )


def test_not_found(provider: AzureProvider) -> None:
    assert provider.describe([vm("ghost")])[0].state is ResourceState.MISSING
    (result,) = provider.start([vm("ghost")])
    assert result.error is ErrorKind.NOT_FOUND
    assert result.state is ResourceState.MISSING


def test_conflict_is_wrong_state(fake: FakeArm, provider: AzureProvider) -> None:
    fake.add(SUB, RG, "vm-1", "running")
    fake.fail_next("POST", r"/deallocate$", 409)
    (result,) = provider.stop([vm("vm-1")])
    assert result.error is ErrorKind.WRONG_STATE
    assert result.state is RUNNING


def test_allocation_failure_is_capacity(fake: FakeArm, provider: AzureProvider) -> None:
    fake.add(SUB, RG, "vm-1", "deallocated")
    fake.inject(SUB, RG, "vm-1", "capacity")
    (result,) = provider.start([vm("vm-1")])
    assert result.error is ErrorKind.CAPACITY
    assert "AllocationFailed" in result.message


def test_a_vm_that_never_runs_times_out(fake: FakeArm) -> None:
    clock = FakeTime()
    fake.add(SUB, RG, "vm-1", "deallocated")
    fake.inject(SUB, RG, "vm-1", "never-running")
    provider = make_provider(
        fake, clock=clock.monotonic, sleep=clock.sleep, timeout_seconds=60, poll_seconds=5
    )
    try:
        (result,) = provider.start([vm("vm-1")])
    finally:
        provider.close()
    assert result.error is ErrorKind.TIMEOUT
    assert result.state is ResourceState.STARTING
    assert "still starting 60 s after" in result.message
    assert 60 <= sum(clock.sleeps) < 66


def test_an_operation_that_never_ends_times_out(fake: FakeArm) -> None:
    fake.add(SUB, RG, "vm-1", "running")
    fake.inject(SUB, RG, "vm-1", "stuck")
    provider = make_provider(fake, timeout_seconds=0.3, polling_interval=0.02)
    try:
        (result,) = provider.stop([vm("vm-1")])
    finally:
        provider.close()
    assert result.error is ErrorKind.TIMEOUT
    assert result.state is ResourceState.STOPPING


def test_credential_failures_say_how_to_sign_in(fake: FakeArm) -> None:
    fake.add(SUB, RG, "vm-1", "deallocated")
    provider = make_provider(fake, credential=BrokenCredential())
    try:
        (status,) = provider.describe([vm("vm-1")])
        (result,) = provider.start([vm("vm-1")])
    finally:
        provider.close()
    assert status.state is ResourceState.UNKNOWN
    assert result.error is ErrorKind.PERMISSION_DENIED
    assert "az login" in result.message
    assert fake.requests == []  # no token, no request


@pytest.mark.parametrize(
    "resource",
    [
        Resource(
            "azure",
            "vm",
            f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/"
            "virtualMachines/vm-1",
        ),
        Resource("azure", "vm", f"{RG}/vm-1"),
        Resource("azure", "vm", "vm-1", tags={"resource_group": RG}),
        Resource("azure", "vm", "vm-1", account=SUB, tags={"resource_group": RG}),
    ],
    ids=["arm-id", "group/name", "name+tag", "name+tag+account"],
)
def test_resource_id_forms(fake: FakeArm, provider: AzureProvider, resource: Resource) -> None:
    fake.add(SUB, RG, "vm-1", "running")
    assert provider.describe([resource])[0].state is RUNNING


def test_a_name_without_a_resource_group_is_refused(provider: AzureProvider) -> None:
    (result,) = provider.start([Resource("azure", "vm", "vm-1")])
    assert result.error is ErrorKind.UNSUPPORTED
    assert "resourceGroups/<group>/<name>" in result.message


def test_the_resource_group_option_is_the_default(fake: FakeArm) -> None:
    fake.add(SUB, RG, "vm-1", "running")
    provider = make_provider(fake, resource_group=RG)
    try:
        assert provider.describe([Resource("azure", "vm", "vm-1")])[0].state is RUNNING
    finally:
        provider.close()


def test_scale_sets_are_deallocated_and_started(fake: FakeArm, provider: AzureProvider) -> None:
    fake.add(SUB, RG, "ss-1", "running", kind="vmss", capacity=3)
    scale_set = Resource("azure", "vmss", rid("ss-1"))
    assert provider.describe([scale_set])[0].state is RUNNING
    assert provider.stop([scale_set])[0].kind is ResultKind.DONE
    assert fake.power(SUB, RG, "ss-1", kind="vmss") == "deallocated"
    assert provider.describe([scale_set])[0].state is STOPPED
    assert provider.stop([scale_set])[0].kind is ResultKind.ALREADY
    assert provider.start([scale_set])[0].kind is ResultKind.DONE
    paths = [r.path for r in fake.requests if r.method == "POST"]
    assert [p.rsplit("/", 1)[1] for p in paths] == ["deallocate", "start"]
    assert all("/virtualMachineScaleSets/ss-1/" in p for p in paths)


def test_discover_across_subscriptions_groups_and_locations(fake: FakeArm) -> None:
    other = "00000000-0000-0000-0000-000000000002"
    fake.add(SUB, RG, "a", tags={"team": "x"}, size="Standard_D2s_v5")
    fake.add(SUB, "rg-other", "b", "deallocated", tags={"Team": "x"}, location="eastus")
    fake.add(other, RG, "c", tags={"team": "x"})
    fake.add(SUB, RG, "d", tags={"team": "y"})
    fake.add(SUB, RG, "ss", kind="vmss", tags={"team": "x"}, capacity=3)
    provider = make_provider(fake, subscriptions=[SUB, other])
    try:

        def found(**kwargs: Any) -> set[tuple[str, str | None, str]]:
            selector = Selector("azure", tags={"team": "x"}, **kwargs)
            return {(r.kind, r.account, r.id) for r in provider.discover(selector)}

        assert found() == {
            ("vm", SUB, rid("a")),
            ("vm", SUB, rid("b", "rg-other")),
            ("vm", other, rid("c")),
            ("vmss", SUB, rid("ss")),
        }
        assert found(regions=["East US"], kinds=["vm"]) == {("vm", SUB, rid("b", "rg-other"))}
        assert found(account=other) == {("vm", other, rid("c"))}
        (a,) = [
            r for r in provider.discover(Selector("azure", tags={"team": "x"})) if r.name == "a"
        ]
        assert (a.region, a.size, a.hourly_price) == (
            "westeurope",
            "Standard_D2s_v5",
            Money("0.115"),
        )
        (scale_set,) = provider.discover(Selector("azure", tags={"team": "x"}, kinds=["vmss"]))
        assert scale_set.hourly_price == Money("0.0456") * 3
        with pytest.raises(ProviderError, match="unknown kind 'gce'"):
            provider.discover(Selector("azure", kinds=["gce"]))
    finally:
        provider.close()
    limited = make_provider(fake, resource_groups=["RG-OTHER"])
    try:
        assert {r.id for r in limited.discover(Selector("azure", kinds=["vm"]))} == {
            rid("b", "rg-other")
        }
    finally:
        limited.close()


def test_discovery_needs_a_subscription() -> None:
    with pytest.raises(ProviderError, match="no subscription to search"):
        AzureProvider(credential=StaticCredential()).discover(Selector("azure"))


def test_discovery_failures_are_provider_errors(fake: FakeArm, provider: AzureProvider) -> None:
    fake.fail_next("GET", r"/providers/Microsoft.Compute/virtualMachines$", 403)
    with pytest.raises(ProviderError, match=r"virtualMachines/read"):
        provider.discover(Selector("azure", kinds=["vm"]))


def test_in_flight_calls_are_bounded(fake: FakeArm) -> None:
    fake.server.latency = 0.02
    for n in range(10):
        fake.add(SUB, RG, f"vm-{n}", "deallocated")
    provider = make_provider(fake, max_in_flight=3)
    try:
        results = provider.start([vm(f"vm-{n}") for n in range(10)])
    finally:
        provider.close()
    assert all(r.kind is ResultKind.DONE for r in results)
    assert 2 <= fake.server.peak_in_flight <= 3
