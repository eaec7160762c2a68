"""One driver per kind of AWS resource: how to observe, refuse, start/stop and discover it.

The provider's engine (:mod:`nightops_providers.aws._provider`) owns the flow — observe,
decide, call, verify — and asks a driver only kind-specific questions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Final, Literal

import attrs

from nightops_core.model import Resource, ResourceState
from nightops_core.ports import ActionResult, ErrorKind, ResultKind
from nightops_providers._common import target_state, who
from nightops_providers.aws._api import Api, CallFailed, Place, names

__all__ = [
    "ASG_OWNER_TAG",
    "DRIVERS",
    "HIBERNATE_TAG",
    "RESTORE_TAG",
    "SEVEN_DAYS_NOTE",
    "Driver",
    "Observed",
    "Outcome",
    "Verb",
    "who",
]

logger = logging.getLogger("nightops.providers.aws")

Verb = Literal["start", "stop"]

#: Tag on an ASG / ECS service remembering the size to restore on start.
RESTORE_TAG: Final = "nightops:restore"
#: Tag on an EC2 instance choosing hibernation on stop ("true"/"false"), over the option.
HIBERNATE_TAG: Final = "nightops:hibernate"
#: Tag AWS puts on the instances of an Auto Scaling group.
ASG_OWNER_TAG: Final = "aws:autoscaling:groupName"
SEVEN_DAYS_NOTE: Final = (
    "note: AWS starts a stopped RDS database again by itself after 7 days; "
    "NightOps stops it again only at the schedule's next stop"
)

#: EC2 accepts at most 200 filter values per call (FilterLimitExceeded).
_EC2_FILTER_CHUNK: Final = 200
#: Instance ids per StartInstances/StopInstances call (no documented maximum; 1000 is
#: the most any EC2 instance-id list accepts elsewhere, e.g. DescribeInstanceCreditSpecifications).
_EC2_ACTION_CHUNK: Final = 1000
_RDS_FILTER_CHUNK: Final = 100
_ASG_NAMES_CHUNK: Final = 50
_ECS_SERVICES_CHUNK: Final = 10  # DescribeServices takes at most 10 services

_S = ResourceState

_EC2_STATES: Final[Mapping[str, ResourceState]] = {
    "pending": _S.STARTING,
    "running": _S.RUNNING,
    "stopping": _S.STOPPING,
    "stopped": _S.STOPPED,
    "shutting-down": _S.MISSING,
    "terminated": _S.MISSING,
}
#: RDS instance / cluster statuses; any other status is a running database that is busy
#: (backing-up, modifying, …): shown as running, and AWS may refuse to stop it until done.
_RDS_STATES: Final[Mapping[str, ResourceState]] = {
    "available": _S.RUNNING,
    "stopped": _S.STOPPED,
    "starting": _S.STARTING,
    "stopping": _S.STOPPING,
    "creating": _S.STARTING,
    "deleting": _S.MISSING,
    "failed": _S.FAILED,
    "incompatible-network": _S.FAILED,
    "incompatible-option-group": _S.FAILED,
    "incompatible-parameters": _S.FAILED,
    "incompatible-restore": _S.FAILED,
    "inaccessible-encryption-credentials": _S.FAILED,
    "inaccessible-encryption-credentials-recoverable": _S.FAILED,
    "restore-error": _S.FAILED,
    "storage-full": _S.FAILED,
}


@attrs.frozen
class Observed:
    """What one describe said about one resource: its state, why, and the raw record."""

    state: ResourceState
    detail: str = ""
    facts: Mapping[str, Any] = attrs.field(factory=dict)


#: What a start/stop call did for one resource: a failure, or a note for the result
#: message ("" when there is nothing to add).
Outcome = CallFailed | str


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _unique(resources: Iterable[Resource]) -> list[str]:
    return list(dict.fromkeys(r.id for r in resources))


def _tag_list(tags: Iterable[Mapping[str, Any]] | None, key: str = "Key") -> dict[str, str]:
    value = "Value" if key == "Key" else "value"
    return {str(t[key]): str(t.get(value, "")) for t in tags or ()}


def _failed(
    resource: Resource, state: ResourceState, error: ErrorKind, message: str
) -> ActionResult:
    return ActionResult(resource, ResultKind.FAILED, state, message, error)


class Driver:
    """The kind-specific part of the provider. Subclasses set :attr:`kind`."""

    kind: ClassVar[str] = ""
    #: True: one unit of work per (account, region) — the API acts on many ids per call.
    #: False: one unit per resource, fanned out.
    batched: ClassVar[bool] = False

    def __init__(self, api: Api, provider_name: str, hibernate: bool) -> None:
        self.api = api
        self.provider_name = provider_name
        self.hibernate = hibernate

    def observe(self, place: Place, resources: Sequence[Resource]) -> dict[str, Observed]:
        """Observations by id; ids AWS does not know are left out."""
        raise NotImplementedError

    def check(self, verb: Verb, resource: Resource, observed: Observed) -> ActionResult | None:
        """A result when the resource must not be acted on (refused, skipped)."""
        return None

    def call(
        self, verb: Verb, place: Place, items: Sequence[tuple[Resource, Observed]]
    ) -> dict[str, Outcome]:
        """Start/stop the resources; an outcome per id."""
        raise NotImplementedError

    def fell_back(self, verb: Verb, resource: Resource, observed: Observed) -> str:
        """The message for a resource that was acted on and settled in the wrong state."""
        reason = f" ({observed.detail})" if observed.detail else ""
        return (
            f"the {verb} of {who(resource)} was accepted but it ended "
            f"{observed.state.value}, not {target_state(verb).value}{reason}; "
            "check it in the AWS console"
        )

    def discover(self, place: Place, tags: Mapping[str, str]) -> list[Resource]:
        """Resources of this kind carrying all ``tags`` (only for kinds not found through
        the tagging API)."""
        raise NotImplementedError

    def from_arns(self, place: Place, tagged: Mapping[str, dict[str, str]]) -> list[Resource]:
        """Resources for ARNs the tagging API found (kinds found that way)."""
        raise NotImplementedError

    #: Resource types for resourcegroupstaggingapi:GetResources, if found that way.
    tag_types: ClassVar[tuple[str, ...]] = ()

    def resource(
        self,
        place: Place,
        rid: str,
        tags: Mapping[str, str],
        *,
        name: str = "",
        size: str | None = None,
    ) -> Resource:
        return Resource(
            self.provider_name,
            self.kind,
            rid,
            name=name or tags.get("Name", ""),
            region=place.region,
            size=size,
            account=place.account,
            tags=tags,
        )


# -- EC2 ------------------------------------------------------------------------------------


def _ec2_observed(instance: Mapping[str, Any]) -> Observed:
    name = str(instance.get("State", {}).get("Name", ""))
    state = _EC2_STATES.get(name, _S.UNKNOWN)
    reason = instance.get("StateReason") or {}
    detail = str(reason.get("Message") or "")
    if name in ("terminated", "shutting-down"):
        detail = f"{name}; EC2 cannot start or stop it again"
    elif state is _S.UNKNOWN:
        detail = f"EC2 state {name!r}"
    return Observed(state, detail, instance)


class Ec2(Driver):
    kind = "ec2"
    batched = True

    def observe(self, place: Place, resources: Sequence[Resource]) -> dict[str, Observed]:
        found: dict[str, Observed] = {}
        for chunk in _chunks(_unique(resources), _EC2_FILTER_CHUNK):
            # Filters, not InstanceIds: one unknown id must not fail the whole describe.
            for page in self.api.pages(
                place,
                "ec2",
                "describe_instances",
                cursor="NextToken",
                Filters=[{"Name": "instance-id", "Values": chunk}],
                MaxResults=1000,
            ):
                for reservation in page.get("Reservations", []):
                    for instance in reservation.get("Instances", []):
                        found[str(instance["InstanceId"])] = _ec2_observed(instance)
        return found

    def check(self, verb: Verb, resource: Resource, observed: Observed) -> ActionResult | None:
        tags = _tag_list(observed.facts.get("Tags"))
        group = tags.get(ASG_OWNER_TAG)
        if group:
            return ActionResult(
                resource,
                ResultKind.SKIPPED,
                observed.state,
                f"{who(resource)} is managed by Auto Scaling group {group}; add the group "
                "(kind asg) to the collection instead",
            )
        if (
            verb == "stop"
            and observed.facts.get("RootDeviceType") == "instance-store"
            and observed.state is not _S.STOPPED
        ):
            return _failed(
                resource,
                observed.state,
                ErrorKind.UNSUPPORTED,
                f"{who(resource)} has an instance-store root volume, which EC2 cannot stop; "
                "remove it from the collection",
            )
        return None

    def _wants_hibernate(self, resource: Resource, observed: Observed) -> bool:
        tags = {**dict(resource.tags), **_tag_list(observed.facts.get("Tags"))}
        value = tags.get(HIBERNATE_TAG)
        if value is None:
            return self.hibernate
        return value.strip().lower() in ("true", "yes", "1", "on")

    def call(
        self, verb: Verb, place: Place, items: Sequence[tuple[Resource, Observed]]
    ) -> dict[str, Outcome]:
        if verb == "start":
            return dict(self._isolating(place, "start_instances", [r.id for r, _ in items], {}))
        outcomes: dict[str, Outcome] = {}
        hibernate: list[str] = []
        plain: list[str] = []
        for resource, observed in items:
            if not self._wants_hibernate(resource, observed):
                plain.append(resource.id)
            elif observed.facts.get("HibernationOptions", {}).get("Configured"):
                hibernate.append(resource.id)
            else:
                plain.append(resource.id)
                outcomes[resource.id] = (
                    "hibernation is not enabled on this instance, so it was stopped without it"
                )
        for rid, failure in self._isolating(
            place, "stop_instances", hibernate, {"Hibernate": True}
        ).items():
            if failure.code == "UnsupportedHibernationConfiguration":
                plain.append(rid)
                outcomes[rid] = f"could not hibernate ({failure.aws_message}), stopped instead"
            else:
                outcomes[rid] = failure
        for rid, failure in self._isolating(place, "stop_instances", plain, {}).items():
            outcomes[rid] = failure
        return outcomes

    def _isolating(
        self, place: Place, operation: str, ids: Sequence[str], params: Mapping[str, Any]
    ) -> dict[str, CallFailed]:
        """Act on ``ids`` in as few calls as possible. One bad id fails a whole call: drop
        the ids the error names, or bisect when it names none, so the others still act."""
        failures: dict[str, CallFailed] = {}

        def run(batch: list[str]) -> None:
            if not batch:
                return
            self.api.bucket(place, operation).take()
            try:
                self.api.call(place, "ec2", operation, InstanceIds=batch, **params)
            except CallFailed as exc:
                if not exc.per_resource or len(batch) == 1:
                    failures.update(dict.fromkeys(batch, exc))
                    return
                named = [rid for rid in batch if names(exc.aws_message, rid)]
                if named:
                    failures.update(dict.fromkeys(named, exc))
                    run([rid for rid in batch if rid not in named])
                    return
                middle = len(batch) // 2
                run(batch[:middle])
                run(batch[middle:])

        for chunk in _chunks(list(ids), _EC2_ACTION_CHUNK):
            run(chunk)
        return failures

    def fell_back(self, verb: Verb, resource: Resource, observed: Observed) -> str:
        message = super().fell_back(verb, resource, observed)
        reason = observed.detail
        if verb == "start" and ("InternalError" in reason or "KMS" in reason.upper()):
            message += (
                "; this usually means its EBS volumes are encrypted with a KMS key the "
                "NightOps role may not use: allow kms:CreateGrant (and kms:Decrypt) on that "
                "key for the role (see docs/providers-aws.md)"
            )
        return message

    def discover(self, place: Place, tags: Mapping[str, str]) -> list[Resource]:
        filters = [{"Name": f"tag:{key}", "Values": [value]} for key, value in tags.items()]
        filters.append(
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}
        )
        found = []
        for page in self.api.pages(
            place,
            "ec2",
            "describe_instances",
            cursor="NextToken",
            Filters=filters,
            MaxResults=1000,
        ):
            for reservation in page.get("Reservations", []):
                for instance in reservation.get("Instances", []):
                    found.append(
                        self.resource(
                            place,
                            str(instance["InstanceId"]),
                            _tag_list(instance.get("Tags")),
                            size=instance.get("InstanceType"),
                        )
                    )
        return found


# -- RDS and Aurora ---------------------------------------------------------------------------


def _rds_observed(status: str, facts: Mapping[str, Any]) -> Observed:
    state = _RDS_STATES.get(status, _S.RUNNING)
    detail = "" if status in ("available", "stopped") else f"RDS status {status}"
    return Observed(state, detail, facts)


def _arn_tail(arn: str) -> str:
    """The resource part of an ARN (``db:name``, ``service/cluster/name``)."""
    parts = arn.split(":", 5)
    return parts[5] if len(parts) == 6 else arn


def _rds_describe(
    api: Api, place: Place, ids: Sequence[str], call: tuple[str, str], filter_name: str, noun: str
) -> dict[str, dict[str, Any]]:
    """DB instances or clusters by id (``noun`` is ``DBInstance`` or ``DBCluster``: the
    response lists ``<noun>s`` keyed by ``<noun>Identifier``), paginated, in filter chunks."""
    found: dict[str, dict[str, Any]] = {}
    service, method = call
    for chunk in _chunks(ids, _RDS_FILTER_CHUNK):
        for page in api.pages(
            place,
            service,
            method,
            cursor="Marker",
            Filters=[{"Name": filter_name, "Values": chunk}],
        ):
            for item in page.get(f"{noun}s", []):
                found[str(item[f"{noun}Identifier"])] = item
    return found


class Rds(Driver):
    kind = "rds"
    tag_types = ("rds:db",)

    def observe(self, place: Place, resources: Sequence[Resource]) -> dict[str, Observed]:
        return {
            rid: _rds_observed(str(db.get("DBInstanceStatus", "")), db)
            for rid, db in self._describe(place, _unique(resources)).items()
        }

    def _describe(self, place: Place, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        # (the service and method stay literal: tests/providers/test_aws_policy.py reads them)
        return _rds_describe(
            self.api, place, ids, ("rds", "describe_db_instances"), "db-instance-id", "DBInstance"
        )

    def check(self, verb: Verb, resource: Resource, observed: Observed) -> ActionResult | None:
        facts = observed.facts
        name = who(resource)

        def refuse(message: str) -> ActionResult:
            return _failed(resource, observed.state, ErrorKind.UNSUPPORTED, message)

        cluster = facts.get("DBClusterIdentifier")
        if cluster:
            return refuse(
                f"{name} is a member of Aurora cluster {cluster}; add the cluster "
                "(kind aurora) instead"
            )
        if observed.state is target_state(verb) or verb == "start":
            return None
        source = facts.get("ReadReplicaSourceDBInstanceIdentifier") or facts.get(
            "ReadReplicaSourceDBClusterIdentifier"
        )
        if source:
            return refuse(
                f"{name} is a read replica of {source}, and RDS cannot stop read replicas; "
                "remove it from the collection"
            )
        replicas = list(facts.get("ReadReplicaDBInstanceIdentifiers") or []) + list(
            facts.get("ReadReplicaDBClusterIdentifiers") or []
        )
        if replicas:
            return refuse(
                f"{name} has read replicas ({', '.join(map(str, replicas))}), and RDS cannot "
                "stop an instance that has read replicas; remove it from the collection"
            )
        if str(facts.get("Engine", "")).startswith("sqlserver") and facts.get("MultiAZ"):
            return refuse(
                f"{name} is a SQL Server Multi-AZ instance, which RDS cannot stop; "
                "remove it from the collection"
            )
        return None

    def call(
        self, verb: Verb, place: Place, items: Sequence[tuple[Resource, Observed]]
    ) -> dict[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        for resource, _ in items:
            try:
                self.api.call(place, "rds", f"{verb}_db_instance", DBInstanceIdentifier=resource.id)
                outcomes[resource.id] = SEVEN_DAYS_NOTE if verb == "stop" else ""
            except CallFailed as exc:
                outcomes[resource.id] = exc
        return outcomes

    def from_arns(self, place: Place, tagged: Mapping[str, dict[str, str]]) -> list[Resource]:
        ids = {_arn_tail(arn).removeprefix("db:"): tags for arn, tags in tagged.items()}
        described = self._describe(place, list(ids))
        found = []
        for rid, tags in ids.items():
            db = described.get(rid)
            if db is None or db.get("DBClusterIdentifier"):
                continue  # gone, or an Aurora member (its cluster is the resource)
            found.append(self.resource(place, rid, tags, size=db.get("DBInstanceClass")))
        return found


class Aurora(Driver):
    kind = "aurora"
    tag_types = ("rds:cluster",)

    def observe(self, place: Place, resources: Sequence[Resource]) -> dict[str, Observed]:
        return {
            rid: _rds_observed(str(cluster.get("Status", "")), cluster)
            for rid, cluster in self._describe(place, _unique(resources)).items()
        }

    def _describe(self, place: Place, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return _rds_describe(
            self.api, place, ids, ("rds", "describe_db_clusters"), "db-cluster-id", "DBCluster"
        )

    def check(self, verb: Verb, resource: Resource, observed: Observed) -> ActionResult | None:
        if (
            observed.state is not target_state(verb)
            and observed.facts.get("EngineMode") == "serverless"
        ):
            return _failed(
                resource,
                observed.state,
                ErrorKind.UNSUPPORTED,
                f"{who(resource)} is an Aurora Serverless v1 cluster, which cannot be stopped "
                "(it pauses by itself); remove it from the collection",
            )
        return None

    def call(
        self, verb: Verb, place: Place, items: Sequence[tuple[Resource, Observed]]
    ) -> dict[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        for resource, _ in items:
            try:
                self.api.call(place, "rds", f"{verb}_db_cluster", DBClusterIdentifier=resource.id)
                outcomes[resource.id] = SEVEN_DAYS_NOTE if verb == "stop" else ""
            except CallFailed as exc:
                outcomes[resource.id] = exc
        return outcomes

    def from_arns(self, place: Place, tagged: Mapping[str, dict[str, str]]) -> list[Resource]:
        ids = {_arn_tail(arn).removeprefix("cluster:"): tags for arn, tags in tagged.items()}
        described = self._describe(place, list(ids))
        return [
            self.resource(place, rid, tags, size=described[rid].get("DBClusterInstanceClass"))
            for rid, tags in ids.items()
            if rid in described
        ]


# -- Auto Scaling groups and ECS services: scale to zero and back ----------------------------


def parse_restore(text: str, keys: Sequence[str]) -> dict[str, int] | None:
    """``"min=1,desired=2,max=4"`` -> {"min": 1, ...}; None unless exactly ``keys``."""
    values: dict[str, int] = {}
    for part in text.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or not value.strip().isdigit():
            return None
        values[key.strip()] = int(value)
    return values if sorted(values) == sorted(keys) else None


def _no_size(resource: Resource, observed: Observed, what: str) -> ActionResult:
    return _failed(
        resource,
        observed.state,
        ErrorKind.WRONG_STATE,
        f"{who(resource)} is scaled to 0 and has no {RESTORE_TAG} tag, so NightOps doesn't "
        f"know the size to restore; set it by hand ({what})",
    )


def _bad_tag(resource: Resource, observed: Observed, text: str, what: str) -> ActionResult:
    return _failed(
        resource,
        observed.state,
        ErrorKind.OTHER,
        f"{who(resource)} has an unreadable {RESTORE_TAG} tag ({text!r}); set the size by "
        f"hand ({what}) and delete the tag",
    )


_ASG_KEYS: Final = ("min", "desired", "max")


class AutoScalingGroup(Driver):
    kind = "asg"

    def observe(self, place: Place, resources: Sequence[Resource]) -> dict[str, Observed]:
        found: dict[str, Observed] = {}
        for chunk in _chunks(_unique(resources), _ASG_NAMES_CHUNK):
            for page in self.api.pages(
                place,
                "autoscaling",
                "describe_auto_scaling_groups",
                cursor="NextToken",
                AutoScalingGroupNames=chunk,
                MaxRecords=100,
            ):
                for group in page.get("AutoScalingGroups", []):
                    found[str(group["AutoScalingGroupName"])] = _asg_observed(group)
        return found

    def check(self, verb: Verb, resource: Resource, observed: Observed) -> ActionResult | None:
        if verb != "start" or observed.state not in (_S.STOPPED, _S.STOPPING):
            return None
        text = _tag_list(observed.facts.get("Tags")).get(RESTORE_TAG)
        what = "min/desired/max in the EC2 console"
        if text is None:
            return _no_size(resource, observed, what)
        if parse_restore(text, _ASG_KEYS) is None:
            return _bad_tag(resource, observed, text, what)
        return None

    def call(
        self, verb: Verb, place: Place, items: Sequence[tuple[Resource, Observed]]
    ) -> dict[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        for resource, observed in items:
            try:
                outcomes[resource.id] = self._act(verb, place, resource, observed)
            except CallFailed as exc:
                outcomes[resource.id] = exc
        return outcomes

    def _act(self, verb: Verb, place: Place, resource: Resource, observed: Observed) -> str:
        group = observed.facts
        tag = {
            "ResourceId": resource.id,
            "ResourceType": "auto-scaling-group",
            "Key": RESTORE_TAG,
        }
        if verb == "stop":
            remembered = (
                f"min={group['MinSize']},desired={group['DesiredCapacity']},max={group['MaxSize']}"
            )
            # The tag first: if the resize then fails or NightOps dies, the size survives.
            self.api.call(
                place,
                "autoscaling",
                "create_or_update_tags",
                Tags=[{**tag, "Value": remembered, "PropagateAtLaunch": False}],
            )
            self.api.call(
                place,
                "autoscaling",
                "update_auto_scaling_group",
                AutoScalingGroupName=resource.id,
                MinSize=0,
                DesiredCapacity=0,
                MaxSize=0,
            )
            return f"remembered {remembered} in its {RESTORE_TAG} tag"
        text = _tag_list(group.get("Tags")).get(RESTORE_TAG, "")
        size = parse_restore(text, _ASG_KEYS)
        assert size is not None  # check() refused the others
        self.api.call(
            place,
            "autoscaling",
            "update_auto_scaling_group",
            AutoScalingGroupName=resource.id,
            MinSize=size["min"],
            DesiredCapacity=size["desired"],
            MaxSize=size["max"],
        )
        try:
            self.api.call(place, "autoscaling", "delete_tags", Tags=[tag])
        except CallFailed as exc:
            return f"restored {text}, but could not delete its {RESTORE_TAG} tag: {exc.text}"
        return f"restored {text}"

    def discover(self, place: Place, tags: Mapping[str, str]) -> list[Resource]:
        filters = [{"Name": f"tag:{key}", "Values": [value]} for key, value in tags.items()]
        found = []
        for page in self.api.pages(
            place,
            "autoscaling",
            "describe_auto_scaling_groups",
            cursor="NextToken",
            Filters=filters,
            MaxRecords=100,
        ):
            for group in page.get("AutoScalingGroups", []):
                group_tags = _tag_list(group.get("Tags"))
                if all(group_tags.get(k) == v for k, v in tags.items()):
                    found.append(
                        self.resource(place, str(group["AutoScalingGroupName"]), group_tags)
                    )
        return found


def _asg_observed(group: Mapping[str, Any]) -> Observed:
    desired = int(group.get("DesiredCapacity", 0))
    instances = list(group.get("Instances") or [])
    in_service = sum(1 for i in instances if i.get("LifecycleState") == "InService")
    detail = (
        f"min {group.get('MinSize')}, desired {desired}, max {group.get('MaxSize')}; "
        f"{in_service} in service"
    )
    if group.get("Status") == "Delete in progress":
        return Observed(_S.MISSING, "being deleted", group)
    if desired == 0:
        return Observed(_S.STOPPED if not instances else _S.STOPPING, detail, group)
    return Observed(_S.RUNNING if in_service >= desired else _S.STARTING, detail, group)


class EcsService(Driver):
    """ECS services, identified as ``cluster/service``."""

    kind = "ecs"
    tag_types = ("ecs:service",)

    def observe(self, place: Place, resources: Sequence[Resource]) -> dict[str, Observed]:
        by_cluster: dict[str, list[str]] = {}
        found: dict[str, Observed] = {}
        for rid in _unique(resources):
            cluster, sep, service = rid.partition("/")
            if not sep or not cluster or not service or "/" in service:
                found[rid] = Observed(_S.MISSING, "ECS services are named cluster/service")
                continue
            by_cluster.setdefault(cluster, []).append(service)
        for cluster, services in by_cluster.items():
            for chunk in _chunks(services, _ECS_SERVICES_CHUNK):
                try:
                    page = self.api.call(
                        place,
                        "ecs",
                        "describe_services",
                        cluster=cluster,
                        services=chunk,
                        include=["TAGS"],
                    )
                except CallFailed as exc:
                    if exc.code == "ClusterNotFoundException":
                        continue  # every service of it is missing
                    raise
                for service in page.get("services", []):
                    rid = f"{cluster}/{service['serviceName']}"
                    found[rid] = _ecs_observed(service)
        return found

    def check(self, verb: Verb, resource: Resource, observed: Observed) -> ActionResult | None:
        if verb != "start" or observed.state not in (_S.STOPPED, _S.STOPPING):
            return None
        text = _tag_list(observed.facts.get("tags"), key="key").get(RESTORE_TAG)
        what = "the desired task count in the ECS console"
        if text is None:
            return _no_size(resource, observed, what)
        if parse_restore(text, ("desired",)) is None:
            return _bad_tag(resource, observed, text, what)
        return None

    def call(
        self, verb: Verb, place: Place, items: Sequence[tuple[Resource, Observed]]
    ) -> dict[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        for resource, observed in items:
            try:
                outcomes[resource.id] = self._act(verb, place, resource, observed)
            except CallFailed as exc:
                outcomes[resource.id] = exc
        return outcomes

    def _act(self, verb: Verb, place: Place, resource: Resource, observed: Observed) -> str:
        service = observed.facts
        arn = str(service["serviceArn"])
        cluster, _, name = resource.id.partition("/")
        if verb == "stop":
            remembered = f"desired={service['desiredCount']}"
            self.api.call(
                place,
                "ecs",
                "tag_resource",
                resourceArn=arn,
                tags=[{"key": RESTORE_TAG, "value": remembered}],
            )
            self.api.call(
                place, "ecs", "update_service", cluster=cluster, service=name, desiredCount=0
            )
            return f"remembered {remembered} in its {RESTORE_TAG} tag"
        text = _tag_list(service.get("tags"), key="key").get(RESTORE_TAG, "")
        size = parse_restore(text, ("desired",))
        assert size is not None  # check() refused the others
        self.api.call(
            place,
            "ecs",
            "update_service",
            cluster=cluster,
            service=name,
            desiredCount=size["desired"],
        )
        try:
            self.api.call(place, "ecs", "untag_resource", resourceArn=arn, tagKeys=[RESTORE_TAG])
        except CallFailed as exc:
            return f"restored {text}, but could not delete its {RESTORE_TAG} tag: {exc.text}"
        return f"restored {text}"

    def from_arns(self, place: Place, tagged: Mapping[str, dict[str, str]]) -> list[Resource]:
        found = []
        for arn, tags in tagged.items():
            path = _arn_tail(arn).removeprefix("service/")
            if path.count("/") != 1:
                # An old-format ARN (service/name) does not say its cluster.
                logger.warning("aws: skipping ECS service %s: its ARN names no cluster", arn)
                continue
            found.append(self.resource(place, path, tags))
        return found


def _ecs_observed(service: Mapping[str, Any]) -> Observed:
    status = str(service.get("status", ""))
    if status != "ACTIVE":
        return Observed(_S.MISSING, f"ECS service status {status}", service)
    desired = int(service.get("desiredCount", 0))
    running = int(service.get("runningCount", 0))
    pending = int(service.get("pendingCount", 0))
    detail = f"{running} of {desired} tasks running"
    if desired == 0:
        return Observed(_S.STOPPED if running + pending == 0 else _S.STOPPING, detail, service)
    return Observed(_S.RUNNING if running >= desired else _S.STARTING, detail, service)


#: The drivers by kind, in discovery order.
DRIVERS: Final[tuple[type[Driver], ...]] = (Ec2, Rds, Aurora, AutoScalingGroup, EcsService)
