"""The Amazon Web Services provider (boto3): EC2 instances, RDS DB instances, Aurora DB
clusters, Auto Scaling groups and ECS services.

Importing this package imports boto3 (install ``nightops[aws]``) but creates nothing: the
session, clients and assumed roles come on first use. See ``docs/providers-aws.md``.
"""

from nightops_providers.aws._kinds import ASG_OWNER_TAG, HIBERNATE_TAG, RESTORE_TAG
from nightops_providers.aws._provider import KINDS, AwsProvider

__all__ = ["ASG_OWNER_TAG", "HIBERNATE_TAG", "KINDS", "RESTORE_TAG", "AwsProvider"]
