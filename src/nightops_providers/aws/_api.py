"""The boto3 boundary: clients, credentials, retries, pacing, and error translation.

Everything that touches boto3/botocore directly lives here; the kind drivers call
:meth:`Api.call` and see only plain dicts and :class:`CallFailed`.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast

import attrs
import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)
from botocore.parsers import ResponseParserError  # type: ignore[import-untyped]

from nightops_core.ports import ErrorKind
from nightops_providers._common import Throttled, retry_throttled

__all__ = ["IAM_PREFIX", "Api", "CallFailed", "Place", "TokenBucket"]

#: The IAM service prefix of each boto3 service NightOps calls.
IAM_PREFIX: Final[Mapping[str, str]] = {
    "autoscaling": "autoscaling",
    "ec2": "ec2",
    "ecs": "ecs",
    "rds": "rds",
    "resourcegroupstaggingapi": "tag",
    "sts": "sts",
}

#: Error codes that mean "slow down" across the services we call (EC2:
#: RequestLimitExceeded; RDS: Throttling; JSON services: ThrottlingException).
THROTTLING_CODES: Final = frozenset(
    {
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
        "EC2ThrottledException",
    }
)
_DENIED: Final = frozenset(
    {"UnauthorizedOperation", "AccessDenied", "AccessDeniedException", "OptInRequired"}
)
_BAD_CREDENTIALS: Final = frozenset(
    {
        "AuthFailure",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "IncompleteSignature",
        "MissingAuthenticationToken",
    }
)
_NOT_FOUND: Final = frozenset(
    {
        "InvalidInstanceID.NotFound",
        "InvalidInstanceID.Malformed",
        "DBInstanceNotFound",
        "DBInstanceNotFoundFault",
        "DBClusterNotFoundFault",
        "ServiceNotFoundException",
        "ServiceNotActiveException",
        "ClusterNotFoundException",
        "ResourceNotFoundException",
        "InvalidResourceId",
    }
)
_WRONG_STATE: Final = frozenset(
    {
        "IncorrectInstanceState",
        "IncorrectState",
        "InvalidDBInstanceState",
        "InvalidDBInstanceStateFault",
        "InvalidDBClusterStateFault",
        "ScalingActivityInProgress",
        "ScalingActivityInProgressFault",
        "ResourceInUse",
        "ResourceInUseFault",
        "OperationNotPermitted",
    }
)
_CAPACITY: Final = frozenset(
    {
        "InsufficientInstanceCapacity",
        "InsufficientDBInstanceCapacity",
        "InsufficientDBInstanceCapacityFault",
        "InsufficientCapacity",
        "InstanceLimitExceeded",
        "VcpuLimitExceeded",
        "LimitExceeded",
        "LimitExceededFault",
        "ServiceLimitExceeded",
    }
)
_UNSUPPORTED: Final = frozenset(
    {
        "UnsupportedOperation",
        "UnsupportedOperationException",
        "UnsupportedHibernationConfiguration",
        "UnsupportedInstanceAttribute",
        "InvalidParameterCombination",
        "OperationDisableApiStopNotPermitted",
    }
)

#: Re-assume a role when its credentials have less than this left.
_ROLE_REFRESH_MARGIN: Final = timedelta(minutes=5)


@attrs.frozen(order=True)
class Place:
    """Where API calls go: an account (None = the default credentials) and a region."""

    account: str | None
    region: str

    def __str__(self) -> str:
        return self.region if self.account is None else f"{self.region} (account {self.account})"


class CallFailed(Exception):
    """An AWS call failed, translated: what kind of failure, and what to tell the user.

    ``per_resource`` is False for failures that concern every call (no credentials, no
    endpoint, still throttled): isolating resources would not help.
    """

    def __init__(
        self,
        error: ErrorKind,
        text: str,
        *,
        code: str = "",
        action: str = "",
        aws_message: str = "",
        per_resource: bool = True,
        generic: bool = False,
    ) -> None:
        super().__init__(text)
        self.error = error
        self.text = text
        self.code = code
        self.action = action
        self.aws_message = aws_message
        self.per_resource = per_resource
        #: ``text`` is a template that names no resource (``{who}`` is filled in).
        self.generic = generic

    def message_for(self, who: str) -> str:
        """The user-facing message about the resource ``who``."""
        return self.text.replace("{who}", who) if self.generic else self.text


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "") or "")


def _aws_message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", "") or "")


def translate_client_error(exc: ClientError, action: str, place: Place) -> CallFailed:
    """A botocore ClientError as a CallFailed whose text says what to do; ``{who}`` stands
    for the resource concerned."""
    code = _code(exc)
    said = _aws_message(exc)
    detail = f"{code}: {said}" if said else code

    def failed(error: ErrorKind, text: str, *, per_resource: bool = True) -> CallFailed:
        return CallFailed(
            error,
            text,
            code=code,
            action=action,
            aws_message=said,
            per_resource=per_resource,
            generic=True,
        )

    if code in _DENIED:
        return failed(
            ErrorKind.PERMISSION_DENIED,
            f"missing permission {action} on {{who}}; add it to the NightOps role's policy "
            "(see docs/iam-policy.json)",
        )
    if code in _BAD_CREDENTIALS:
        return failed(
            ErrorKind.PERMISSION_DENIED,
            f"AWS rejected the credentials calling {action} for {{who}} in {place} ({detail}); "
            "check AWS_PROFILE / providers.aws.profile or the role, and renew expired credentials",
            per_resource=False,
        )
    if code in THROTTLING_CODES:
        return failed(
            ErrorKind.THROTTLED,
            f"AWS kept throttling {action} for {{who}} ({code}); try again in a minute "
            "(or lower max_in_flight / start_rate_per_second)",
            per_resource=False,
        )
    if code in _NOT_FOUND:
        return failed(
            ErrorKind.NOT_FOUND,
            f"{{who}} does not exist in {place} ({detail}); remove it from the collection "
            "or fix its id, region or account",
        )
    if code in _WRONG_STATE:
        return failed(
            ErrorKind.WRONG_STATE,
            f"AWS refused {action} for {{who}} in its current state ({detail}); "
            "try again when it has settled",
        )
    if code in _CAPACITY:
        return failed(
            ErrorKind.CAPACITY,
            f"AWS has no capacity for {action} on {{who}} right now ({detail}); try again "
            "later, or change its instance type or zone",
        )
    if code in _UNSUPPORTED:
        return failed(ErrorKind.UNSUPPORTED, f"AWS cannot do {action} on {{who}} ({detail})")
    return failed(ErrorKind.OTHER, f"{action} failed for {{who}} ({detail})")


NO_CREDENTIALS: Final = (
    "no AWS credentials found: set AWS_PROFILE (or providers.aws.profile) or run in an "
    "environment with a role"
)


def translate_sdk_error(exc: Exception, action: str, place: Place) -> CallFailed:
    """Any other botocore error as a CallFailed that concerns every resource."""

    def failed(error: ErrorKind, text: str) -> CallFailed:
        return CallFailed(error, text, action=action, per_resource=False)

    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return failed(ErrorKind.PERMISSION_DENIED, NO_CREDENTIALS)
    if isinstance(exc, CredentialRetrievalError):
        return failed(
            ErrorKind.PERMISSION_DENIED,
            f"could not get AWS credentials ({exc}); check the profile's credential source",
        )
    if isinstance(exc, ProfileNotFound):
        return failed(
            ErrorKind.PERMISSION_DENIED,
            f"{exc}: fix providers.aws.profile / AWS_PROFILE, or add the profile to ~/.aws/config",
        )
    if isinstance(exc, NoRegionError):
        return failed(
            ErrorKind.OTHER,
            "no AWS region: give the resource a region, or set providers.aws.region / AWS_REGION",
        )
    if isinstance(exc, ConnectTimeoutError | ReadTimeoutError):
        return failed(
            ErrorKind.TIMEOUT,
            f"AWS did not answer {action} in {place} in time ({exc}); try again, or check "
            "the network and endpoint_url",
        )
    if isinstance(exc, EndpointConnectionError):
        return failed(
            ErrorKind.OTHER,
            f"cannot reach the AWS endpoint for {action} in {place} ({exc}); check the "
            "network, the region name, and endpoint_url / AWS_ENDPOINT_URL",
        )
    return failed(ErrorKind.OTHER, f"{action} failed in {place}: {type(exc).__name__}: {exc}")


class TokenBucket:
    """Client-side pacing of one API: ``burst`` calls at once, refilled at ``rate`` per
    second; :meth:`take` waits (with the injected ``sleep``) for a token."""

    def __init__(
        self,
        rate: float,
        burst: int,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._at: float | None = None

    def take(self) -> None:
        while True:
            with self._lock:
                now = self._clock()
                if self._at is not None:
                    elapsed = max(0.0, now - self._at)
                    self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
                self._at = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                wait = (1 - self._tokens) / self._rate
            self._sleep(wait)


@attrs.frozen
class _RoleCredentials:
    access_key: str
    secret_key: str
    token: str
    expires: datetime


#: Called with (service name, client) for every client created.
ClientHook = Callable[[str, Any], None]


class Api:
    """Lazily created boto3 clients, one per (account, region, service), reused.

    boto3 clients are thread-safe, sessions are not: the session is created, and clients
    are created from it, under one lock. Accounts listed in ``accounts`` are reached by
    assuming their role (credentials cached until shortly before they expire).
    """

    def __init__(
        self,
        *,
        session: Any | None,
        profile: str | None,
        region: str | None,
        accounts: Mapping[str, str],
        endpoint_url: str | None,
        max_attempts: int,
        max_pool_connections: int,
        throttle_attempts: int,
        role_session_name: str,
        start_rate: float,
        start_burst: int,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        rng: random.Random,
        on_client: ClientHook | None,
    ) -> None:
        self._session = session
        self._profile = profile
        self._region = region
        self._accounts = dict(accounts)
        self._endpoint_url = endpoint_url
        self._throttle_attempts = throttle_attempts
        self._role_session_name = role_session_name
        self._start_rate = start_rate
        self._start_burst = start_burst
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self._on_client = on_client
        # Retries inside botocore: "standard" mode retries throttling and transient
        # errors with exponential backoff and jitter. botocore's own "max_attempts" counts
        # retries only; "total_max_attempts" counts the first attempt too, as ours does.
        self._config = Config(
            retries={"mode": "standard", "total_max_attempts": max_attempts},
            max_pool_connections=max_pool_connections,
            user_agent_extra="nightops",
        )
        self._lock = threading.Lock()
        self._role_lock = threading.Lock()
        self._clients: dict[tuple[str | None, str, str], tuple[Any, _RoleCredentials | None]] = {}
        self._roles: dict[str, _RoleCredentials] = {}
        self._buckets: dict[tuple[Place, str], TokenBucket] = {}

    # -- sessions and clients -----------------------------------------------------------------

    def _base_session(self) -> Any:
        """The default boto3 session (lock held)."""
        if self._session is None:
            self._session = boto3.Session(profile_name=self._profile, region_name=self._region)
        return self._session

    def default_region(self) -> str:
        """The region for calls that name none: the ``region`` option, else the session's."""
        if self._region:
            return self._region
        try:
            with self._lock:
                region = self._base_session().region_name
        except (BotoCoreError, ValueError) as exc:
            raise translate_sdk_error(exc, "configure", Place(None, "?")) from exc
        if not region:
            raise translate_sdk_error(NoRegionError(), "configure", Place(None, "?"))
        return str(region)

    def check_account(self, account: str | None) -> None:
        """CallFailed if ``account`` names an account without a configured role."""
        if account is not None and account not in self._accounts:
            raise CallFailed(
                ErrorKind.PERMISSION_DENIED,
                f"no role configured for AWS account {account}: add it to providers.aws."
                f'accounts, e.g. accounts = {{ "{account}" = '
                f'"arn:aws:iam::{account}:role/NightOps" }}',
                per_resource=False,
            )

    def client(self, place: Place, service: str) -> Any:
        """The client for ``service`` in ``place`` (created on first use)."""
        self.check_account(place.account)
        credentials = None if place.account is None else self._role(place.account)
        key = (place.account, place.region, service)
        with self._lock:
            cached = self._clients.get(key)
            if cached is not None and cached[1] is credentials:
                return cached[0]
            try:
                options: dict[str, Any] = {}
                if credentials is not None:
                    options = {
                        "aws_access_key_id": credentials.access_key,
                        "aws_secret_access_key": credentials.secret_key,
                        "aws_session_token": credentials.token,
                    }
                client = self._base_session().client(
                    service,
                    region_name=place.region,
                    endpoint_url=self._endpoint_url,
                    config=self._config,
                    **options,
                )
            except (BotoCoreError, ValueError) as exc:
                raise translate_sdk_error(exc, f"{IAM_PREFIX[service]}:*", place) from exc
            if self._on_client is not None:
                self._on_client(service, client)
            self._clients[key] = (client, credentials)
            return client

    def _role(self, account: str) -> _RoleCredentials:
        """Credentials of the account's role, assumed (again) when needed."""
        with self._role_lock:
            cached = self._roles.get(account)
            if cached is not None and cached.expires - datetime.now(UTC) > _ROLE_REFRESH_MARGIN:
                return cached
            arn = self._accounts[account]
            try:
                answer = self.call(
                    Place(None, self.default_region()),
                    "sts",
                    "assume_role",
                    RoleArn=arn,
                    RoleSessionName=self._role_session_name,
                )
            except CallFailed as exc:
                raise CallFailed(
                    exc.error,
                    f"cannot assume role {arn} for AWS account {account} "
                    f"({exc.code or exc.error.value}: {exc.aws_message or exc.text}); allow "
                    "sts:AssumeRole on it for the NightOps identity and trust that identity in "
                    "the role's trust policy",
                    code=exc.code,
                    action="sts:AssumeRole",
                    per_resource=False,
                ) from exc
            found = answer["Credentials"]
            expires = found.get("Expiration")
            if not isinstance(expires, datetime):
                expires = datetime.now(UTC) + timedelta(hours=1)
            elif expires.tzinfo is None:
                expires = expires.replace(tzinfo=UTC)
            role = _RoleCredentials(
                str(found["AccessKeyId"]),
                str(found["SecretAccessKey"]),
                str(found["SessionToken"]),
                expires,
            )
            self._roles[account] = role
            return role

    def bucket(self, place: Place, operation: str) -> TokenBucket:
        """The token bucket pacing ``operation`` in ``place`` (EC2's start/stop)."""
        with self._lock:
            key = (place, operation)
            bucket = self._buckets.get(key)
            if bucket is None:
                if operation == "start_instances":
                    rate, burst = self._start_rate, self._start_burst
                else:
                    # Other mutating EC2 calls: a bucket of 50, refilled at 5 per second
                    # (docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html).
                    rate, burst = 5.0, 50
                bucket = self._buckets[key] = TokenBucket(rate, burst, self._clock, self._sleep)
            return bucket

    # -- calls --------------------------------------------------------------------------------

    def call(self, place: Place, service: str, operation: str, /, **params: Any) -> dict[str, Any]:
        """``client.<operation>(**params)`` with throttling retried (botocore's standard
        retries inside, then :func:`retry_throttled` with jitter around them); every
        failure becomes :class:`CallFailed`."""
        client = self.client(place, service)
        api_name = client.meta.method_to_api_mapping.get(operation) or _pascal(operation)
        action = f"{IAM_PREFIX[service]}:{api_name}"

        def once() -> dict[str, Any]:
            try:
                return cast(dict[str, Any], getattr(client, operation)(**params))
            except ClientError as exc:
                if _code(exc) in THROTTLING_CODES:
                    raise Throttled(f"{action}: {_code(exc)}") from exc
                raise

        try:
            return retry_throttled(
                once, attempts=self._throttle_attempts, sleep=self._sleep, rng=self._rng
            )
        except Throttled as exc:
            cause = exc.__cause__
            assert isinstance(cause, ClientError)
            raise translate_client_error(cause, action, place) from cause
        except ClientError as exc:
            raise translate_client_error(exc, action, place) from exc
        except (BotoCoreError, ResponseParserError, ValueError) as exc:
            # ResponseParserError: an endpoint (a proxy, a stand-in) answered with garbage.
            raise translate_sdk_error(exc, action, place) from exc

    def pages(
        self,
        place: Place,
        service: str,
        operation: str,
        /,
        *,
        cursor: str,
        **params: Any,
    ) -> Iterator[dict[str, Any]]:
        """The pages of a paginated call whose request and answer name the next page's
        position ``cursor`` (NextToken, Marker, …); each page is retried like :meth:`call`."""
        position: str | None = None
        while True:
            extra = {cursor: position} if position else {}
            page = self.call(place, service, operation, **params, **extra)
            yield page
            position = page.get(cursor) or None
            if position is None:
                return


def _pascal(operation: str) -> str:
    """The API (and IAM action) name of a boto3 method name."""
    special = {"db": "DB", "ecs": "ECS"}
    return "".join(special.get(part, part.capitalize()) for part in operation.split("_"))


def names(message: str, resource_id: str) -> bool:
    """Whether an AWS error message names ``resource_id`` (as a whole word)."""
    return re.search(rf"(?<![\w-]){re.escape(resource_id)}(?![\w-])", message) is not None
