"""Test support for the AWS provider: moto in server mode, and faults injected into it.

One ``ThreadedMotoServer`` on 127.0.0.1 serves the whole test run (started on first use,
stopped at exit); every test starts from an empty cloud (moto's ``POST /moto-api/reset``)
with fake credentials in the environment and ``AWS_ENDPOINT_URL`` pointing at moto, so no
request can reach AWS. Creating a boto3 session's first client costs 0.2-0.4 s, so one
session is shared by every provider and helper of the run.

moto's transitions are instant and it is more lenient than AWS, so faults are injected
by patching **moto's backend methods** (the layer behind its HTTP API): they raise moto's
own ``EC2ClientError`` / ``RDSClientError``, which travel back through the real HTTP
request and botocore's real error and retry handling, exactly like an AWS error would.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import boto3
import pytest
from contract import FakeTime
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.instances import InstanceBackend, StateReason
from moto.rds.exceptions import RDSClientError
from moto.rds.models import RDSBackend
from moto.server import ThreadedMotoServer

from nightops_core.model import Resource, ResourceState
from nightops_providers.aws import AwsProvider

REGION = "us-east-1"
OTHER_REGION = "eu-west-1"
#: moto's default account, and one reached by assuming a role.
MAIN_ACCOUNT = "123456789012"
OTHER_ACCOUNT = "111111111111"
OTHER_ROLE = f"arn:aws:iam::{OTHER_ACCOUNT}:role/NightOps"
AMI = "ami-12c6146b"  # one of moto's built-in AMIs

_EC2_STATES = {
    "pending": ResourceState.STARTING,
    "running": ResourceState.RUNNING,
    "stopping": ResourceState.STOPPING,
    "stopped": ResourceState.STOPPED,
    "terminated": ResourceState.MISSING,
}


@functools.cache
def moto_endpoint() -> str:
    """The URL of the run's moto server (started on first call)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    atexit.register(server.stop)
    host, port = server.get_host_and_port()
    return f"http://{host}:{port}"


def reset_moto() -> None:
    request = urllib.request.Request(f"{moto_endpoint()}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()


@functools.cache
def shared_session() -> Any:
    """One boto3 session for the run (credentials come from the test environment)."""
    return boto3.Session(region_name=REGION)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> str:
    """Fake credentials and moto's endpoint in the environment (undone by monkeypatch);
    moto emptied. The endpoint URL."""
    url = moto_endpoint()
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/nightops-test-aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/nightops-test-aws-creds")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    reset_moto()
    return url


def make_provider(
    clock: FakeTime | None = None, *, real_time: bool = False, **options: Any
) -> AwsProvider:
    """A provider on the shared session, with fake time unless ``real_time``; botocore
    makes one attempt per call (our own retry layer, which sleeps on the fake clock, does
    the retrying)."""
    defaults: dict[str, Any] = {
        "session": shared_session(),
        "region": REGION,
        "max_attempts": 1,
        "seed": 7,
    }
    if not real_time:
        clock = clock or FakeTime()
        defaults.update(clock=clock.monotonic, sleep=clock.sleep)
    return AwsProvider(**{**defaults, **options})


class Cloud:
    """Creates and inspects resources in moto, with its own clients (not the provider's)."""

    def __init__(self) -> None:
        self._clients: dict[tuple[str, str, str | None], Any] = {}
        self._lock = threading.Lock()

    def client(self, service: str, region: str = REGION, account: str | None = None) -> Any:
        with self._lock:
            key = (service, region, account)
            if key not in self._clients:
                options: dict[str, Any] = {}
                if account is not None:
                    sts = shared_session().client("sts", region_name=REGION)
                    creds = sts.assume_role(
                        RoleArn=f"arn:aws:iam::{account}:role/NightOps",
                        RoleSessionName="tests",
                    )["Credentials"]
                    options = {
                        "aws_access_key_id": creds["AccessKeyId"],
                        "aws_secret_access_key": creds["SecretAccessKey"],
                        "aws_session_token": creds["SessionToken"],
                    }
                self._clients[key] = shared_session().client(service, region_name=region, **options)
            return self._clients[key]

    def forget_accounts(self) -> None:
        """Drop clients of assumed roles (moto forgets their credentials on reset)."""
        with self._lock:
            for key in [k for k in self._clients if k[2] is not None]:
                del self._clients[key]

    # -- EC2 -----------------------------------------------------------------------------

    def ec2(
        self,
        state: ResourceState = ResourceState.RUNNING,
        *,
        count: int = 1,
        region: str = REGION,
        tags: Mapping[str, str] | None = None,
        name: str = "",
        account: str | None = None,
        instance_type: str = "t3.micro",
        hibernation: bool = False,
    ) -> list[Resource]:
        all_tags = {**(tags or {}), **({"Name": name} if name else {})}
        options: dict[str, Any] = {}
        if all_tags:
            options["TagSpecifications"] = [
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": k, "Value": v} for k, v in all_tags.items()],
                }
            ]
        if hibernation:
            options["HibernationOptions"] = {"Configured": True}
        ec2 = self.client("ec2", region, account)
        answer = ec2.run_instances(
            ImageId=AMI, MinCount=count, MaxCount=count, InstanceType=instance_type, **options
        )
        ids = [i["InstanceId"] for i in answer["Instances"]]
        if state is ResourceState.STOPPED:
            ec2.stop_instances(InstanceIds=ids)
        return [
            Resource(
                "aws",
                "ec2",
                rid,
                name=name,
                region=region,
                size=instance_type,
                account=account,
                tags=tags or {},
            )
            for rid in ids
        ]

    def ec2_state(self, resource: Resource) -> ResourceState:
        ec2 = self.client("ec2", resource.region, resource.account)
        (reservation,) = ec2.describe_instances(InstanceIds=[resource.id])["Reservations"]
        return _EC2_STATES[reservation["Instances"][0]["State"]["Name"]]

    def set_ec2_state(self, resource: Resource, state: ResourceState) -> None:
        ec2 = self.client("ec2", resource.region, resource.account)
        if state is ResourceState.RUNNING:
            ec2.start_instances(InstanceIds=[resource.id])
        elif state is ResourceState.STOPPED:
            ec2.stop_instances(InstanceIds=[resource.id])
        else:
            raise ValueError(state)

    def terminate(self, resource: Resource) -> None:
        ec2 = self.client("ec2", resource.region, resource.account)
        ec2.terminate_instances(InstanceIds=[resource.id])

    # -- RDS -----------------------------------------------------------------------------

    def rds(
        self,
        state: ResourceState = ResourceState.RUNNING,
        *,
        db_id: str | None = None,
        region: str = REGION,
        tags: Mapping[str, str] | None = None,
        engine: str = "postgres",
        db_class: str = "db.t3.micro",
        **options: Any,
    ) -> Resource:
        rds = self.client("rds", region)
        db_id = db_id or f"db-{uuid.uuid4().hex[:8]}"
        rds.create_db_instance(
            DBInstanceIdentifier=db_id,
            DBInstanceClass=db_class,
            Engine=engine,
            AllocatedStorage=20,
            MasterUsername="admin1",
            MasterUserPassword="password1234",
            Tags=[{"Key": k, "Value": v} for k, v in (tags or {}).items()],
            **options,
        )
        if state is ResourceState.STOPPED:
            rds.stop_db_instance(DBInstanceIdentifier=db_id)
        return Resource("aws", "rds", db_id, region=region, size=db_class, tags=tags or {})

    def aurora(
        self,
        state: ResourceState = ResourceState.RUNNING,
        *,
        cluster_id: str = "cluster-1",
        region: str = REGION,
        tags: Mapping[str, str] | None = None,
    ) -> tuple[Resource, Resource]:
        """An Aurora cluster and its writer instance."""
        rds = self.client("rds", region)
        rds.create_db_cluster(
            DBClusterIdentifier=cluster_id,
            Engine="aurora-postgresql",
            MasterUsername="admin1",
            MasterUserPassword="password1234",
            Tags=[{"Key": k, "Value": v} for k, v in (tags or {}).items()],
        )
        rds.create_db_instance(
            DBInstanceIdentifier=f"{cluster_id}-writer",
            DBInstanceClass="db.r5.large",
            Engine="aurora-postgresql",
            DBClusterIdentifier=cluster_id,
        )
        if state is ResourceState.STOPPED:
            rds.stop_db_cluster(DBClusterIdentifier=cluster_id)
        cluster = Resource("aws", "aurora", cluster_id, region=region, tags=tags or {})
        member = Resource("aws", "rds", f"{cluster_id}-writer", region=region)
        return cluster, member

    def rds_status(self, resource: Resource) -> str:
        rds = self.client("rds", resource.region)
        if resource.kind == "aurora":
            found = rds.describe_db_clusters(DBClusterIdentifier=resource.id)["DBClusters"]
            return str(found[0]["Status"])
        found = rds.describe_db_instances(DBInstanceIdentifier=resource.id)["DBInstances"]
        return str(found[0]["DBInstanceStatus"])

    # -- Auto Scaling and ECS ------------------------------------------------------------

    def asg(
        self,
        name: str = "web-asg",
        *,
        size: tuple[int, int, int] = (1, 2, 4),
        region: str = REGION,
        tags: Mapping[str, str] | None = None,
    ) -> Resource:
        autoscaling = self.client("autoscaling", region)
        autoscaling.create_launch_configuration(
            LaunchConfigurationName=f"{name}-lc", ImageId=AMI, InstanceType="t3.micro"
        )
        minimum, desired, maximum = size
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=name,
            LaunchConfigurationName=f"{name}-lc",
            MinSize=minimum,
            DesiredCapacity=desired,
            MaxSize=maximum,
            AvailabilityZones=[f"{region}a"],
            Tags=[
                {
                    "Key": k,
                    "Value": v,
                    "PropagateAtLaunch": False,
                    "ResourceId": name,
                    "ResourceType": "auto-scaling-group",
                }
                for k, v in (tags or {}).items()
            ],
        )
        return Resource("aws", "asg", name, region=region, tags=tags or {})

    def asg_group(self, resource: Resource) -> dict[str, Any]:
        autoscaling = self.client("autoscaling", resource.region)
        groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[resource.id])
        return dict(groups["AutoScalingGroups"][0])

    def ecs(
        self,
        cluster: str = "apps",
        service: str = "web",
        *,
        desired: int = 2,
        region: str = REGION,
        tags: Mapping[str, str] | None = None,
    ) -> Resource:
        ecs = self.client("ecs", region)
        ecs.create_cluster(clusterName=cluster)
        ecs.register_task_definition(
            family=service, containerDefinitions=[{"name": "app", "image": "nginx", "memory": 64}]
        )
        ecs.create_service(
            cluster=cluster,
            serviceName=service,
            taskDefinition=service,
            desiredCount=0,
            tags=[{"key": k, "value": v} for k, v in (tags or {}).items()],
        )
        # moto runs no tasks; update_service sets runningCount = desiredCount, which plays
        # the ECS scheduler bringing the service to its size.
        ecs.update_service(cluster=cluster, service=service, desiredCount=desired)
        return Resource("aws", "ecs", f"{cluster}/{service}", region=region, tags=tags or {})

    def ecs_service(self, resource: Resource) -> dict[str, Any]:
        cluster, _, service = resource.id.partition("/")
        ecs = self.client("ecs", resource.region)
        found = ecs.describe_services(cluster=cluster, services=[service], include=["TAGS"])
        return dict(found["services"][0])


@functools.cache
def shared_cloud() -> Cloud:
    return Cloud()


class MotoFaults:
    """Faults injected into moto's EC2 and RDS backends (the layer behind moto's HTTP API),
    and a record of the EC2 start/stop calls that reached it.

    * ``denied[verb]``: ids whose StartInstances/StopInstances raise UnauthorizedOperation
      (AWS fails the whole call; the provider must isolate the id);
    * ``throttle[op]``: the next N calls of ``op`` raise RequestLimitExceeded (EC2:
      ``start``, ``stop``, ``describe``) or Throttling (RDS: ``rds-stop``);
    * ``fallback``: ids that StartInstances accepts, then leaves stopped with the state
      reason AWS gives when the EBS volume's KMS key may not be used;
    * ``vanished``: ids that describe still shows but start/stop call unknown
      (InvalidInstanceID.NotFound naming them: AWS's eventual consistency);
    * ``stuck``: ids whose transition never ends (pending / stopping for ever);
    * ``delay``: seconds each StartInstances/StopInstances takes (the transition time).
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self.denied: dict[str, set[str]] = {"start": set(), "stop": set()}
        self.fallback: set[str] = set()
        self.vanished: set[str] = set()
        self.stuck: set[str] = set()
        self.throttle: dict[str, int] = {"start": 0, "stop": 0, "describe": 0, "rds-stop": 0}
        self.delay = 0.0
        self._quiet = False
        self._lock = threading.Lock()
        original_start = InstanceBackend.start_instances
        original_stop = InstanceBackend.stop_instances
        original_describe = InstanceBackend.describe_instances
        original_rds_stop = RDSBackend.stop_db_instance

        def start(backend: Any, instance_ids: list[str]) -> Any:
            return self._ec2_act("start", original_start, backend, instance_ids)

        def stop(backend: Any, instance_ids: list[str]) -> Any:
            return self._ec2_act("stop", original_stop, backend, instance_ids)

        def describe(backend: Any, *args: Any, **kwargs: Any) -> Any:
            self._maybe_throttle("describe")
            return original_describe(backend, *args, **kwargs)

        def rds_stop(backend: Any, *args: Any, **kwargs: Any) -> Any:
            with self._lock:
                if self.throttle["rds-stop"] > 0:
                    self.throttle["rds-stop"] -= 1
                    raise RDSClientError("Throttling", "Rate exceeded")
            return original_rds_stop(backend, *args, **kwargs)

        monkeypatch.setattr(InstanceBackend, "start_instances", start)
        monkeypatch.setattr(InstanceBackend, "stop_instances", stop)
        monkeypatch.setattr(InstanceBackend, "describe_instances", describe)
        monkeypatch.setattr(RDSBackend, "stop_db_instance", rds_stop)

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        """Neither record nor fault the calls made meanwhile (the test's own set-up)."""
        self._quiet = True
        try:
            yield
        finally:
            self._quiet = False

    def _maybe_throttle(self, op: str) -> None:
        with self._lock:
            if self.throttle[op] > 0 and not self._quiet:
                self.throttle[op] -= 1
                raise EC2ClientError("RequestLimitExceeded", "Request limit exceeded.")

    def _ec2_act(
        self, verb: str, original: Callable[..., Any], backend: Any, ids: list[str]
    ) -> Any:
        if self._quiet:
            return original(backend, ids)
        with self._lock:
            self.calls.append((verb, tuple(ids)))
        self._maybe_throttle(verb)
        if self.denied[verb] & set(ids):
            raise EC2ClientError(
                "UnauthorizedOperation",
                "You are not authorized to perform this operation. "
                "Encoded authorization failure message: dGVzdA",
            )
        gone = [rid for rid in ids if rid in self.vanished]
        if gone:
            raise EC2ClientError(
                "InvalidInstanceID.NotFound", f"The instance ID '{', '.join(gone)}' does not exist"
            )
        if self.delay:
            time.sleep(self.delay)
        result = original(backend, ids)
        for instance, _ in result:
            if verb == "start" and instance.id in self.fallback:
                instance._state.name = "stopped"
                instance._state.code = 80
                instance.state_reason = StateReason(
                    "Client.InternalError: Client error on launch", "Client.InternalError"
                )
            if instance.id in self.stuck:  # the transition never ends
                instance._state.name = "pending" if verb == "start" else "stopping"
                instance._state.code = 0 if verb == "start" else 64
        return result

    def mutating(self) -> list[tuple[str, str]]:
        with self._lock:
            return [(verb, rid) for verb, ids in self.calls for rid in ids]


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch) -> MotoFaults:
    return MotoFaults(monkeypatch)


@pytest.fixture
def cloud(aws: str) -> Cloud:
    found = shared_cloud()
    found.forget_accounts()
    return found


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()
