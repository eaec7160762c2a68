"""The shared provider contract, run against the AWS provider on moto (server mode).

EC2 instances are the resources. Faults are injected into moto's backend (see
:class:`aws_fixtures.MotoFaults`): ``fail-start`` / ``fail-stop`` make the backend raise
UnauthorizedOperation for calls naming the instance, ``fallback`` leaves a started
instance stopped with the KMS state reason, ``missing`` terminates it.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from aws_fixtures import (
    OTHER_REGION,
    REGION,
    MotoFaults,
    make_provider,
    moto_endpoint,
    reset_moto,
    shared_cloud,
)
from contract import FakeTime, ProviderContract

from nightops_core.model import Resource, ResourceState
from nightops_providers.aws import AwsProvider


class AwsHarness:
    regions = (REGION, OTHER_REGION)

    def __init__(self, *, real_time: bool) -> None:
        self._monkeypatch = pytest.MonkeyPatch()
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": moto_endpoint(),
            "AWS_CONFIG_FILE": "/nonexistent/nightops-test-aws-config",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/nightops-test-aws-creds",
        }.items():
            self._monkeypatch.setenv(name, value)
        self._monkeypatch.delenv("AWS_PROFILE", raising=False)
        reset_moto()
        self.cloud = shared_cloud()
        self.faults = MotoFaults(self._monkeypatch)
        self.provider: AwsProvider
        if real_time:
            # moto's transitions are instant: each StartInstances call takes this long
            # instead, so acting one by one would take N x T.
            self.transition_seconds = 0.5
            self.faults.delay = self.transition_seconds
            self.provider = make_provider(real_time=True, poll_seconds=0.01, regions=self.regions)
        else:
            self.transition_seconds = 0.0
            self.time = FakeTime()
            # The account's "enabled regions" are the harness's two (moto has ~38).
            self.provider = make_provider(self.time, regions=self.regions)

    def create(
        self,
        state: ResourceState,
        *,
        region: str | None = None,
        tags: Mapping[str, str] | None = None,
        name: str = "",
    ) -> Resource:
        with self.faults.quiet():
            (resource,) = self.cloud.ec2(state, region=region or REGION, tags=tags, name=name)
        return resource

    def inject(self, resource: Resource, fault: str) -> None:
        if fault == "fail-start":
            self.faults.denied["start"].add(resource.id)
        elif fault == "fail-stop":
            self.faults.denied["stop"].add(resource.id)
        elif fault == "fallback":
            self.faults.fallback.add(resource.id)
        elif fault == "missing":
            with self.faults.quiet():
                self.cloud.terminate(resource)
        else:
            pytest.skip(f"the AWS harness cannot simulate {fault!r}")

    def set_state(self, resource: Resource, state: ResourceState) -> None:
        with self.faults.quiet():  # not the provider's doing
            self.cloud.set_ec2_state(resource, state)

    def state_of(self, resource: Resource) -> ResourceState:
        return self.cloud.ec2_state(resource)

    def mutating_calls(self) -> list[tuple[str, str]]:
        return self.faults.mutating()

    def close(self) -> None:
        self._monkeypatch.undo()


class TestAwsContract(ProviderContract):
    def make_harness(self, *, real_time: bool) -> AwsHarness:
        return AwsHarness(real_time=real_time)
