"""A Slack world for the adapter tests: a real Service over the in-memory fakes, the
adapter served by waitress on 127.0.0.1:0, a fake Slack Web API, and a client that signs
requests with slack-sdk's real SignatureVerifier."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from fake_slack import FakeSlack
from slack_sdk.signature import SignatureVerifier

from nightops.slack_host import HttpServer, start_http
from nightops_core.approvals import ApprovalRule, Approvers
from nightops_core.model import Collection, Money, Resource, ResourceState
from nightops_core.notify import NotificationSettings
from nightops_core.permissions import Account, ChannelRule, Role
from nightops_core.service import Service
from nightops_core.settings import Settings
from nightops_core.testing import FakeClock, FakeCloud, InMemoryStateStore, SequentialIds
from nightops_slack import (
    Clients,
    KvInstallationStore,
    KvOAuthStateStore,
    Linker,
    Messenger,
    OAuthFlow,
    SlackAdapter,
    StaticToken,
    Team,
    make_wsgi_app,
)
from nightops_slack.web import InstalledTokens

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM = "T1"


def res(rid: str, name: str, price: str = "0.10", stage: int = 0) -> Resource:
    return Resource("fake", "vm", rid, name, "eu-1", size="m.small", stage=stage,
                    hourly_price=Money(price))  # fmt: skip


STAGING_RES = (
    res("db-1", "rds-primary", "0.20"),
    res("i-1", "api-server-1", stage=1),
    res("i-2", "api-server-2", stage=1),
    res("i-3", "worker", stage=1),
    res("c-1", "<!channel> cache", stage=1),
)
PROD_RES = (res("p-1", "prod-1"),)
STAGING = Collection(
    "staging-api", "Staging API", "staging", STAGING_RES, slack_channel="#staging-ops"
)
PRODUCTION = Collection("production-api", "Production API", "production", PROD_RES)

ALICE = Account("alice@company.com", Role.MEMBER, ("staging-*", "production-*"))
BOB = Account("bob@company.com", Role.ADMIN)


class MovableClock:
    """The signature verifier's clock: real time plus an offset."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset


class World:
    def __init__(self, fake: FakeSlack) -> None:
        self.fake = fake
        fake.add_user("UALICE", "alice", "alice@company.com")
        fake.add_user("UBOB", "bob", "bob@company.com")
        fake.add_user("UEVE", "eve", "eve@elsewhere.org")
        fake.add_user("UGUEST", "guest", "guest@company.com", is_restricted=True)
        fake.add_channel("CDEV1", "dev-team")
        fake.add_channel("CAPPR1", "approvers")
        fake.add_channel("CSTAGING1", "staging-ops")
        fake.add_channel("CRANDOM1", "random")
        fake.add_channel("CQUIET1", "quiet", bot_member=False)
        self.cloud = FakeCloud("fake")
        for r in STAGING_RES:
            self.cloud.add(r, ResourceState.RUNNING)
        for r in PROD_RES:
            self.cloud.add(r, ResourceState.STOPPED)
        self.store = InMemoryStateStore()
        self.clock = FakeClock()
        settings = Settings(
            collections=(STAGING, PRODUCTION),
            channel_rules=(
                ChannelRule("#dev-team", frozenset({"all"}), ("staging-*", "production-*")),
                ChannelRule("#quiet", frozenset({"all"}), ("staging-*",)),
                ChannelRule("#approvers", frozenset({"status"}), ("*",), approvals=True),
            ),
            accounts=(ALICE, BOB),
            approval_rules=(
                ApprovalRule(
                    ("production-*",), Approvers(channel="#approvers"), timedelta(minutes=30)
                ),
            ),
            notifications=NotificationSettings(default_channel="#alerts"),
            sso_domains=("company.com",),
        )
        self.installations = KvInstallationStore(self.store, self.clock)
        tokens = InstalledTokens(self.installations, StaticToken("xoxb-test", Team(TEAM)))
        self.clients = Clients(tokens, api_url=fake.api_url, channel_interval=0)
        self.messenger = Messenger(self.clients, self.store, self.clock, progress_interval=0)
        self.base_url = "http://nightops.example"
        self.linker = Linker(self.store, self.clock, signing_secret=SECRET, base_url=self.base_url)
        self.service = Service(
            settings,
            providers={"fake": self.cloud},
            store=self.store,
            notifier=self.messenger.notifier,
            clock=self.clock,
            ids=SequentialIds(),
            link_url=self.linker.link_url,
        )
        self.signature_clock = MovableClock()
        self.adapter = SlackAdapter(
            self.service,
            self.messenger,
            signing_secret=SECRET,
            signature_clock=self.signature_clock,
            ack_budget=1.0,
        )
        self.oauth = OAuthFlow(
            client_id="1.2",
            client_secret="shh",
            redirect_uri="http://nightops.example/slack/oauth_redirect",
            clients=self.clients,
            installations=self.installations,
            states=KvOAuthStateStore(self.store, self.clock),
        )
        self.server: HttpServer = start_http(
            make_wsgi_app(self.adapter, linker=self.linker, oauth=self.oauth)
        )
        self._n = 0

    def close(self) -> None:
        self.server.stop()
        self.adapter.close()

    # --- requests ----------------------------------------------------------------------

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def signed(
        self,
        body: bytes,
        *,
        age: float = 0.0,
        retry: int | None = None,
        secret: str = SECRET,
        content_type: str = "application/x-www-form-urlencoded",
    ) -> dict[str, str]:
        timestamp = str(int(time.time() - age))
        signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
        headers = {
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": signature or "",
            "Content-Type": content_type,
        }
        if retry is not None:
            headers["X-Slack-Retry-Num"] = str(retry)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        return headers

    def post_events(self, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        status, _, raw = self.request("POST", "/slack/events", body, headers)
        if raw and raw.startswith(b"{"):
            return status, json.loads(raw)
        return status, raw.decode() or None

    def command_body(
        self,
        text: str,
        *,
        user: str = "UALICE",
        channel: tuple[str, str] = ("CDEV1", "dev-team"),
        trigger: str | None = None,
        team: str = TEAM,
    ) -> tuple[bytes, str]:
        self._n += 1
        url_name = f"cmd{self._n}"
        form = {
            "token": "legacy",
            "team_id": team,
            "team_domain": "acme",
            "channel_id": channel[0],
            "channel_name": channel[1],
            "user_id": user,
            "user_name": user.lower().removeprefix("u"),
            "command": "/nightops",
            "text": text,
            "api_app_id": "A1",
            "response_url": self.fake.response_url(url_name),
            "trigger_id": trigger or f"trig-{self._n}",
        }
        return urlencode(form).encode(), url_name

    def command(self, text: str, **kw: Any) -> tuple[int, Any, str]:
        body, url_name = self.command_body(text, **kw)
        status, ack = self.post_events(body, self.signed(body))
        return status, ack, url_name

    def answer(self, text: str, **kw: Any) -> Any:
        """The first answer to a command: in the ack, else the first response_url post."""
        status, ack, url_name = self.command(text, **kw)
        assert status == 200
        return ack if ack else self.wait_responses(url_name)[0]

    def click(
        self,
        action_id: str,
        value: str,
        *,
        user: str = "UALICE",
        channel: tuple[str, str] = ("CDEV1", "dev-team"),
        team: str = TEAM,
    ) -> tuple[int, str]:
        self._n += 1
        url_name = f"click{self._n}"
        payload = {
            "type": "block_actions",
            "team": {"id": team, "domain": "acme"},
            "user": {"id": user, "username": user.lower(), "team_id": team},
            "api_app_id": "A1",
            "trigger_id": f"trig-click-{self._n}",
            "channel": {"id": channel[0], "name": channel[1]},
            "container": {"type": "message", "message_ts": "1.1", "channel_id": channel[0]},
            "response_url": self.fake.response_url(url_name),
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": "b1",
                    "value": value,
                    "action_ts": f"{1700000000 + self._n}.5",
                }
            ],
        }
        body = urlencode({"payload": json.dumps(payload)}).encode()
        status, _ = self.post_events(body, self.signed(body))
        return status, url_name

    def submit_view(
        self, private_metadata: str, reason: str, *, user: str = "UALICE"
    ) -> tuple[int, Any]:
        self._n += 1
        payload = {
            "type": "view_submission",
            "team": {"id": TEAM, "domain": "acme"},
            "user": {"id": user, "username": user.lower(), "team_id": TEAM},
            "trigger_id": f"trig-view-{self._n}",
            "view": {
                "id": f"V{self._n}",
                "hash": f"h{self._n}",
                "callback_id": "nightops.reason",
                "private_metadata": private_metadata,
                "state": {"values": {"reason": {"reason": {"type": "plain_text_input",
                                                           "value": reason}}}},
            },
        }  # fmt: skip
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return self.post_events(body, self.signed(body))

    def wait_responses(self, name: str, count: int = 1) -> list[dict[str, Any]]:
        return list(self.fake.wait_for(lambda: len(r := self.fake.responses_to(name)) >= count
                                       and r))  # fmt: skip


def text_of(message: Any) -> str:
    """Everything a person would read in a message / ack / response (JSON-dumped)."""
    return json.dumps(message, ensure_ascii=False)


def path_and_query(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    server = FakeSlack().start()
    yield server
    server.stop()


@pytest.fixture
def world(fake: FakeSlack) -> Iterator[World]:
    w = World(fake)
    yield w
    w.close()
