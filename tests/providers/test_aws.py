"""The AWS provider against moto in server mode: what the shared contract does not cover.

See ``aws_fixtures`` for the stand-in: real boto3 over HTTP to a local moto server, fake
credentials, faults injected by patching moto's backend methods.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import boto3
import pytest
from aws_fixtures import (
    MAIN_ACCOUNT,
    OTHER_ACCOUNT,
    OTHER_REGION,
    OTHER_ROLE,
    REGION,
    Cloud,
    MotoFaults,
    make_provider,
)
from aws_fixtures import aws as aws  # fixtures, used by name
from aws_fixtures import clock as clock
from aws_fixtures import cloud as cloud
from aws_fixtures import faults as faults
from contract import FakeTime, ProgressRecorder

from nightops.plugins import load_provider
from nightops_core.errors import ConfigError, ProviderError
from nightops_core.model import Money, Resource, ResourceState, Selector
from nightops_core.ports import CloudProvider, ErrorKind, ResultKind
from nightops_providers.aws import RESTORE_TAG, AwsProvider
from nightops_providers.aws._api import TokenBucket

RUNNING = ResourceState.RUNNING
STOPPED = ResourceState.STOPPED


def starts(faults: MotoFaults) -> list[tuple[str, ...]]:
    return [ids for verb, ids in faults.calls if verb == "start"]


# -- construction -------------------------------------------------------------------------------


def test_loads_through_the_entry_point_with_its_options() -> None:
    provider = load_provider(
        "aws",
        {"region": "eu-central-1", "max_in_flight": 4, "accounts": {OTHER_ACCOUNT: OTHER_ROLE}},
    )
    assert isinstance(provider, AwsProvider)
    assert isinstance(provider, CloudProvider)
    assert provider.name == "aws"
    with pytest.raises(
        ConfigError, match=r"unknown option 'hibernation' \(did you mean 'hibernate'\?\)"
    ):
        load_provider("aws", {"hibernation": True})


def test_importing_and_building_creates_nothing() -> None:
    code = (
        "import threading, boto3\n"
        "from nightops_providers.aws import AwsProvider\n"
        "AwsProvider(region='us-east-1', accounts={'111111111111': "
        "'arn:aws:iam::111111111111:role/NightOps'})\n"
        "assert boto3.DEFAULT_SESSION is None\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"max_in_flight": 0}, ValueError, "max_in_flight must be a whole number >= 1"),
        ({"poll_seconds": 0}, ValueError, "poll_seconds must be a number > 0"),
        ({"verify_timeout_seconds": "10m"}, TypeError, "verify_timeout_seconds must be a number"),
        ({"start_burst": 2.5}, TypeError, "start_burst must be a whole number >= 1"),
        ({"hibernate": "yes"}, TypeError, "hibernate must be true or false"),
        ({"regions": "us-east-1"}, TypeError, "regions must be a list"),
        ({"accounts": {"12": OTHER_ROLE}}, ValueError, "not a 12-digit AWS account id"),
        ({"accounts": {OTHER_ACCOUNT: "NightOps"}}, ValueError, "is not a role ARN"),
    ],
)
def test_bad_options_are_refused(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        AwsProvider(**options)


def test_the_token_bucket_paces_calls() -> None:
    clock = FakeTime()
    bucket = TokenBucket(2.0, 5, clock.monotonic, clock.sleep)
    for _ in range(7):
        bucket.take()
    assert clock.monotonic() - 1000.0 == pytest.approx(1.0)  # 5 at once, then 2 per second


# -- EC2 ------------------------------------------------------------------------------------------


def test_a_batch_is_one_call_per_region(cloud: Cloud, faults: MotoFaults, clock: FakeTime) -> None:
    here = cloud.ec2(STOPPED, count=5)
    there = cloud.ec2(STOPPED, count=2, region=OTHER_REGION)
    faults.calls.clear()
    results = make_provider(clock).start(here + there)
    assert {r.kind for r in results} == {ResultKind.DONE}
    assert sorted(len(ids) for ids in starts(faults)) == [2, 5]


def test_an_id_named_by_the_error_is_dropped_and_the_rest_act(
    cloud: Cloud, faults: MotoFaults, clock: FakeTime
) -> None:
    resources = cloud.ec2(STOPPED, count=4)
    faults.calls.clear()
    faults.vanished.add(resources[1].id)
    results = make_provider(clock).start(resources)
    assert [r.kind for r in results] == [ResultKind.DONE, ResultKind.FAILED] + [ResultKind.DONE] * 2
    assert results[1].error is ErrorKind.NOT_FOUND
    assert results[1].state is ResourceState.MISSING
    assert "InvalidInstanceID.NotFound" in results[1].message
    assert "remove it from the collection" in results[1].message
    assert [len(ids) for ids in starts(faults)] == [4, 3]  # no bisecting needed


def test_a_denied_id_is_isolated_by_bisecting(
    cloud: Cloud, faults: MotoFaults, clock: FakeTime
) -> None:
    resources = cloud.ec2(STOPPED, count=4)
    faults.calls.clear()
    faults.denied["start"].add(resources[2].id)
    results = make_provider(clock).start(resources)
    assert [r.kind for r in results] == [ResultKind.DONE] * 2 + [ResultKind.FAILED, ResultKind.DONE]
    assert results[2].error is ErrorKind.PERMISSION_DENIED
    assert results[2].message == (
        f"missing permission ec2:StartInstances on {resources[2].id}; add it to the NightOps "
        "role's policy (see docs/iam-policy.json)"
    )
    assert cloud.ec2_state(resources[3]) is RUNNING


def test_an_instance_of_an_auto_scaling_group_is_skipped(
    cloud: Cloud, faults: MotoFaults, clock: FakeTime
) -> None:
    group = cloud.asg("web-asg")
    instance_id = cloud.asg_group(group)["Instances"][0]["InstanceId"]
    resource = Resource("aws", "ec2", instance_id, region=REGION)
    faults.calls.clear()
    (result,) = make_provider(clock).stop([resource])
    assert result.kind is ResultKind.SKIPPED
    assert result.ok is False
    assert result.message == (
        f"{instance_id} is managed by Auto Scaling group web-asg; add the group (kind asg) "
        "to the collection instead"
    )
    assert faults.calls == []


def test_a_terminated_instance_is_refused_without_a_call(
    cloud: Cloud, faults: MotoFaults, clock: FakeTime
) -> None:
    (resource,) = cloud.ec2(STOPPED, name="old-box")
    cloud.terminate(resource)
    faults.calls.clear()
    (result,) = make_provider(clock).start([resource])  # moto would start it; AWS would not
    assert result.kind is ResultKind.FAILED
    assert result.error is ErrorKind.NOT_FOUND
    assert result.state is ResourceState.MISSING
    assert f"old-box ({resource.id}) does not exist (terminated;" in result.message
    assert faults.calls == []
    assert cloud.ec2_state(resource) is ResourceState.MISSING


def test_a_start_that_falls_back_to_stopped_is_reported_with_the_kms_hint(
    cloud: Cloud, faults: MotoFaults, clock: FakeTime
) -> None:
    # moto's start is instant; its backend is patched to leave the instance stopped with
    # the state reason AWS gives when the EBS volume's KMS key may not be used.
    (resource,) = cloud.ec2(STOPPED)
    faults.fallback.add(resource.id)
    (result,) = make_provider(clock).start([resource])
    assert result.kind is ResultKind.FAILED
    assert result.error is ErrorKind.WRONG_STATE
    assert result.state is STOPPED
    assert "was accepted but it ended stopped, not running" in result.message
    assert "Client.InternalError: Client error on launch" in result.message
    assert "kms:CreateGrant" in result.message


def test_verification_times_out_after_verify_timeout_seconds(
    cloud: Cloud, faults: MotoFaults, clock: FakeTime
) -> None:
    (resource,) = cloud.ec2(STOPPED)
    faults.stuck.add(resource.id)
    began = clock.monotonic()
    (result,) = make_provider(clock, verify_timeout_seconds=60, poll_seconds=5).start([resource])
    assert result.error is ErrorKind.TIMEOUT
    assert result.state is ResourceState.STARTING
    assert "did not finish starting within 60 s" in result.message
    assert clock.monotonic() - began == pytest.approx(60)
    assert set(clock.sleeps) == {5}


def test_throttled_calls_are_retried_with_backoff(
    cloud: Cloud, faults: MotoFaults, clock: FakeTime
) -> None:
    # moto's backend raises its own EC2ClientError("RequestLimitExceeded") twice.
    resources = cloud.ec2(STOPPED, count=3)
    faults.calls.clear()
    faults.throttle["start"] = 2
    results = make_provider(clock).start(resources)
    assert {r.kind for r in results} == {ResultKind.DONE}
    assert len(starts(faults)) == 3
    backoffs = [s for s in clock.sleeps if s != 5]
    assert len(backoffs) >= 2
    assert all(0 <= s <= 0.8 for s in backoffs)  # full jitter below 0.2 x 2^n


def test_throttling_that_does_not_stop_gives_throttled(
    cloud: Cloud, faults: MotoFaults, clock: FakeTime
) -> None:
    resources = cloud.ec2(STOPPED, count=2)
    faults.calls.clear()
    faults.throttle["start"] = 1000
    results = make_provider(clock, throttle_attempts=3).start(resources)
    assert {r.error for r in results} == {ErrorKind.THROTTLED}
    assert {r.state for r in results} == {STOPPED}
    assert "AWS kept throttling ec2:StartInstances" in results[0].message
    assert len(starts(faults)) == 3  # not bisected: every call would be throttled


def test_botocore_retries_throttling_itself(cloud: Cloud, faults: MotoFaults) -> None:
    # botocore's "standard" retry mode (really sleeping, < 1 s) absorbs one throttle.
    (resource,) = cloud.ec2(RUNNING)
    faults.throttle["describe"] = 1
    provider = make_provider(max_attempts=3, throttle_attempts=1)
    assert provider.describe([resource])[0].state is RUNNING
    assert faults.throttle["describe"] == 0


# moto warns (in its server thread) that "Throttling" is no error shape of its RDS model
# (the real RDS API does answer it); as an error, that warning would become a 500.
@pytest.mark.filterwarnings("ignore:Exception\\(RDSClientError\\) with code Throttling:UserWarning")
def test_rds_throttling_is_retried(cloud: Cloud, faults: MotoFaults, clock: FakeTime) -> None:
    # moto's RDS backend raises its own RDSClientError("Throttling") twice.
    db = cloud.rds(RUNNING)
    faults.throttle["rds-stop"] = 2
    (result,) = make_provider(clock).stop([db])
    assert result.kind is ResultKind.DONE
    assert cloud.rds_status(db) == "stopped"


def test_hibernation_where_enabled_and_a_plain_stop_elsewhere(
    cloud: Cloud, clock: FakeTime
) -> None:
    (sleepy,) = cloud.ec2(RUNNING, hibernation=True)
    (plain,) = cloud.ec2(RUNNING)
    (opted_out,) = cloud.ec2(RUNNING, hibernation=True, tags={"nightops:hibernate": "false"})
    sent: list[dict[str, Any]] = []

    def record(service: str, client: Any) -> None:
        client.meta.events.register(
            "provide-client-params.ec2.StopInstances", lambda params, **_: sent.append(params)
        )

    provider = make_provider(clock, hibernate=True, on_client=record)
    results = provider.stop([sleepy, plain, opted_out])
    assert {r.kind for r in results} == {ResultKind.DONE}
    assert "hibernation is not enabled" in results[1].message
    assert results[0].message == results[2].message == ""
    hibernated = [p["InstanceIds"] for p in sent if p.get("Hibernate")]
    assert hibernated == [[sleepy.id]]


# -- RDS and Aurora -------------------------------------------------------------------------


def test_rds_stop_start_and_describe(cloud: Cloud, clock: FakeTime) -> None:
    db = cloud.rds(RUNNING)
    provider = make_provider(clock)
    (stopped,) = provider.stop([db])
    assert stopped.kind is ResultKind.DONE
    assert "after 7 days" in stopped.message
    assert provider.describe([db])[0].state is STOPPED
    assert provider.stop([db])[0].kind is ResultKind.ALREADY
    assert provider.start([db])[0].kind is ResultKind.DONE
    assert cloud.rds_status(db) == "available"
    assert provider.start([db])[0].kind is ResultKind.ALREADY


def test_read_replicas_and_their_source_are_refused(cloud: Cloud, clock: FakeTime) -> None:
    source = cloud.rds(RUNNING, db_id="main-db")
    cloud.client("rds").create_db_instance_read_replica(
        DBInstanceIdentifier="main-db-replica", SourceDBInstanceIdentifier="main-db"
    )
    replica = Resource("aws", "rds", "main-db-replica", region=REGION)
    results = make_provider(clock).stop([source, replica])
    assert [r.error for r in results] == [ErrorKind.UNSUPPORTED] * 2
    assert "main-db has read replicas (main-db-replica)" in results[0].message
    assert "main-db-replica is a read replica of main-db" in results[1].message
    assert cloud.rds_status(source) == "available"


def test_sql_server_multi_az_is_refused(cloud: Cloud, clock: FakeTime) -> None:
    db = cloud.rds(RUNNING, engine="sqlserver-se", MultiAZ=True, LicenseModel="license-included")
    (result,) = make_provider(clock).stop([db])
    assert result.error is ErrorKind.UNSUPPORTED
    assert "SQL Server Multi-AZ" in result.message


def test_aurora_is_stopped_at_the_cluster_and_members_are_refused(
    cloud: Cloud, clock: FakeTime
) -> None:
    cluster, member = cloud.aurora(RUNNING)
    provider = make_provider(clock)
    (refused,) = provider.stop([member])
    assert refused.error is ErrorKind.UNSUPPORTED
    assert refused.message == (
        "cluster-1-writer is a member of Aurora cluster cluster-1; add the cluster "
        "(kind aurora) instead"
    )
    (stopped,) = provider.stop([cluster])
    assert stopped.kind is ResultKind.DONE
    assert cloud.rds_status(cluster) == "stopped"
    assert provider.stop([cluster])[0].kind is ResultKind.ALREADY
    assert provider.start([cluster])[0].kind is ResultKind.DONE
    assert cloud.rds_status(cluster) == "available"


# -- Auto Scaling groups and ECS services -----------------------------------------------------


def test_an_asg_is_scaled_to_zero_and_restored_from_its_tag(cloud: Cloud, clock: FakeTime) -> None:
    group = cloud.asg(size=(1, 2, 4))
    (stopped,) = make_provider(clock).stop([group])
    assert stopped.kind is ResultKind.DONE
    found = cloud.asg_group(group)
    assert (found["MinSize"], found["DesiredCapacity"], found["MaxSize"]) == (0, 0, 0)
    assert found["Instances"] == []
    tags = {t["Key"]: t["Value"] for t in found["Tags"]}
    assert tags[RESTORE_TAG] == "min=1,desired=2,max=4"
    # A new provider (NightOps restarted, its state store lost) restores from the tag.
    provider = make_provider(clock)
    assert provider.stop([group])[0].kind is ResultKind.ALREADY
    (started,) = provider.start([group])
    assert started.kind is ResultKind.DONE
    assert started.message == "restored min=1,desired=2,max=4"
    found = cloud.asg_group(group)
    assert (found["MinSize"], found["DesiredCapacity"], found["MaxSize"]) == (1, 2, 4)
    assert RESTORE_TAG not in {t["Key"] for t in found["Tags"]}
    assert provider.start([group])[0].kind is ResultKind.ALREADY


def test_an_asg_at_zero_without_the_tag_is_not_guessed(cloud: Cloud, clock: FakeTime) -> None:
    group = cloud.asg(size=(0, 0, 0))
    (result,) = make_provider(clock).start([group])
    assert result.kind is ResultKind.FAILED
    assert "doesn't know the size to restore; set it by hand" in result.message


def test_an_ecs_service_is_scaled_to_zero_and_restored(cloud: Cloud, clock: FakeTime) -> None:
    service = cloud.ecs("apps", "web", desired=3)
    provider = make_provider(clock)
    assert provider.describe([service])[0].state is RUNNING
    (stopped,) = provider.stop([service])
    assert stopped.kind is ResultKind.DONE
    found = cloud.ecs_service(service)
    assert found["desiredCount"] == 0
    assert {"key": RESTORE_TAG, "value": "desired=3"} in found["tags"]
    (started,) = provider.start([service])
    assert started.kind is ResultKind.DONE
    found = cloud.ecs_service(service)
    assert found["desiredCount"] == 3
    assert RESTORE_TAG not in {t["key"] for t in found.get("tags", [])}


def test_ecs_ids_and_missing_services(cloud: Cloud, clock: FakeTime) -> None:
    cloud.ecs("apps", "web", desired=0)
    provider = make_provider(clock)
    statuses = provider.describe(
        [
            Resource("aws", "ecs", "apps/web", region=REGION),
            Resource("aws", "ecs", "apps/nope", region=REGION),
            Resource("aws", "ecs", "no-cluster/web", region=REGION),
            Resource("aws", "ecs", "web", region=REGION),
        ]
    )
    assert [s.state for s in statuses] == [STOPPED] + [ResourceState.MISSING] * 3
    (result,) = provider.start([Resource("aws", "ecs", "apps/web", region=REGION)])
    assert "doesn't know the size to restore" in result.message


# -- accounts, regions, credentials -----------------------------------------------------------


def test_cross_account_through_an_assumed_role(cloud: Cloud, clock: FakeTime) -> None:
    (theirs,) = cloud.ec2(STOPPED, account=OTHER_ACCOUNT, tags={"team": "x"})
    provider = make_provider(clock, accounts={OTHER_ACCOUNT: OTHER_ROLE})
    progress = ProgressRecorder()
    (result,) = provider.start([theirs], progress)
    assert result.kind is ResultKind.DONE
    assert cloud.ec2_state(theirs) is RUNNING
    assert [r.resource for r in progress.results] == [theirs]
    # Not visible with the default credentials (another account in moto).
    ours = Resource("aws", "ec2", theirs.id, region=REGION)
    assert provider.describe([ours])[0].state is ResourceState.MISSING
    found = provider.discover(
        Selector("aws", regions=[REGION], tags={"team": "x"}, account=OTHER_ACCOUNT)
    )
    assert [(r.id, r.account) for r in found] == [(theirs.id, OTHER_ACCOUNT)]


def test_an_account_without_a_role_is_refused(clock: FakeTime, aws: str) -> None:
    resource = Resource("aws", "ec2", "i-0123456789abcdef0", region=REGION, account="222222222222")
    (result,) = make_provider(clock).start([resource])
    assert result.error is ErrorKind.PERMISSION_DENIED
    assert (
        'accounts = { "222222222222" = "arn:aws:iam::222222222222:role/NightOps" }'
        in result.message
    )


def test_no_credentials_is_an_actionable_failure(
    aws: str, monkeypatch: pytest.MonkeyPatch, clock: FakeTime
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    provider = make_provider(clock, session=boto3.Session(region_name=REGION))
    resource = Resource("aws", "ec2", "i-0123456789abcdef0", region=REGION)
    (result,) = provider.start([resource])
    assert result.error is ErrorKind.PERMISSION_DENIED
    assert result.message.startswith("no AWS credentials found: set AWS_PROFILE")
    (status,) = provider.describe([resource])
    assert status.state is ResourceState.UNKNOWN
    assert "no AWS credentials found" in status.detail
    with pytest.raises(ProviderError, match="no AWS credentials found"):
        provider.discover(Selector("aws", regions=[REGION]))


def test_an_unreachable_endpoint_is_reported(aws: str, clock: FakeTime) -> None:
    provider = make_provider(clock, endpoint_url="http://127.0.0.1:9")
    (status,) = provider.describe([Resource("aws", "ec2", "i-0123456789abcdef0", region=REGION)])
    assert status.state is ResourceState.UNKNOWN
    assert "cannot reach the AWS endpoint" in status.detail


def test_unknown_kinds_are_refused(aws: str, clock: FakeTime) -> None:
    provider = make_provider(clock)
    (result,) = provider.start([Resource("aws", "lambda", "fn", region=REGION)])
    assert result.error is ErrorKind.UNSUPPORTED
    assert "use one of: ec2, rds, aurora, asg, ecs" in result.message
    with pytest.raises(ProviderError, match="unknown kind 'lambda'"):
        provider.discover(Selector("aws", kinds=["lambda"]))


# -- discovery ---------------------------------------------------------------------------------


def test_discover_every_kind_by_tags_with_names_sizes_and_prices(
    cloud: Cloud, clock: FakeTime
) -> None:
    team = {"team": "api"}
    (vm,) = cloud.ec2(RUNNING, tags=team, name="api-1", instance_type="t3.medium")
    cloud.ec2(RUNNING, tags={"team": "web"})
    db = cloud.rds(RUNNING, tags=team, db_id="api-db")
    cluster, _member = cloud.aurora(RUNNING, tags=team)
    cloud.asg("api-asg", tags=team)
    cloud.ecs("apps", "api", tags=team)
    provider = make_provider(clock)
    found = {r.id: r for r in provider.discover(Selector("aws", regions=[REGION], tags=team))}
    assert set(found) == {vm.id, db.id, cluster.id, "api-asg", "apps/api"}
    assert {r.kind for r in found.values()} == {"ec2", "rds", "aurora", "asg", "ecs"}
    assert found[vm.id].name == "api-1"
    assert found[vm.id].size == "t3.medium"
    assert found[vm.id].hourly_price == Money("0.0416")
    assert found[db.id].size == "db.t3.micro"
    assert found[db.id].hourly_price is not None
    assert all(r.region == REGION and r.provider == "aws" for r in found.values())
    only_dbs = provider.discover(Selector("aws", regions=[REGION], tags=team, kinds=["rds"]))
    assert [r.id for r in only_dbs] == [db.id]


def test_discover_searches_every_enabled_region_by_default(
    cloud: Cloud, clock: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stand-in for an account with three enabled regions (moto lists ~38).
    from moto.ec2.models import EC2Backend

    enabled = [REGION, OTHER_REGION, "ap-southeast-2"]
    original = EC2Backend.describe_regions

    def three(self: Any, region_names: Any = None) -> Any:
        return [r for r in original(self, region_names) if r.name in enabled]

    monkeypatch.setattr(EC2Backend, "describe_regions", three)
    (far,) = cloud.ec2(STOPPED, region="ap-southeast-2", tags={"team": "x"})
    found = make_provider(clock).discover(Selector("aws", tags={"team": "x"}, kinds=["ec2"]))
    assert [(r.id, r.region) for r in found] == [(far.id, "ap-southeast-2")]


def test_describe_mixes_kinds_regions_and_accounts_in_input_order(
    cloud: Cloud, clock: FakeTime
) -> None:
    (a,) = cloud.ec2(RUNNING)
    (b,) = cloud.ec2(STOPPED, region=OTHER_REGION)
    db = cloud.rds(STOPPED)
    gone = Resource("aws", "ec2", "i-0123456789abcdef0", region=REGION)
    statuses = make_provider(clock).describe([db, gone, b, a])
    assert [s.resource for s in statuses] == [db, gone, b, a]
    assert [s.state for s in statuses] == [STOPPED, ResourceState.MISSING, STOPPED, RUNNING]


def test_main_account_constant_matches_moto(cloud: Cloud) -> None:
    sts = cloud.client("sts")
    assert sts.get_caller_identity()["Account"] == MAIN_ACCOUNT
