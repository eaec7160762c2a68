"""Host wiring: the Slack runtime built from a TOML config (sandbox cloud, SQLite state),
served by ``serve()`` over HTTP beside a background loop, stopped by an event."""

from __future__ import annotations

import http.client
import json
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
from fake_slack import FakeSlack
from slack_sdk.signature import SignatureVerifier

from nightops.config import parse_config
from nightops.slack_host import build_slack, serve

CONFIG = """
[nightops]
state = "sqlite:///state.db"
sso_domains = ["company.com"]

[providers.sandbox]
transition_seconds = 0

[slack]
bot_token = "xoxb-test"
signing_secret = "${SIGNING}"
app_token = "xapp-test"
api_url = "API_URL"

[[accounts]]
email = "alice@company.com"
role = "member"
collections = ["staging-*"]

[[channels]]
channel = "#dev-team"
commands = "all"
collections = ["staging-*"]

[[collections]]
id = "staging-api"
name = "Staging API"
resources = [
  { provider = "sandbox", kind = "ec2", region = "eu-1", id = "i-1", name = "api-1", hourly_price = "0.05", tags = { "sandbox:state" = "running" } },
]
"""  # noqa: E501


def load(fake: FakeSlack, tmp_path: Path):  # type: ignore[no-untyped-def]
    text = CONFIG.replace("API_URL", fake.api_url)
    return parse_config(text, source="test", base_dir=tmp_path, env={"SIGNING": "sekrit"})


def test_build_slack_from_config(fake: FakeSlack, tmp_path: Path) -> None:
    runtime = build_slack(load(fake, tmp_path), public_url="https://nightops.example")
    try:
        assert runtime.linker is not None
        assert runtime.oauth is None  # no client_id / client_secret
        assert runtime.app.service.link_url is not None
        assert runtime.messenger.clients.api_url == fake.api_url
    finally:
        runtime.close()


def test_serve_http_with_a_background_loop(
    fake: FakeSlack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.add_user("UALICE", "alice", "alice@company.com")
    fake.add_channel("CDEV1", "dev-team")
    stop = threading.Event()
    ran = threading.Event()
    ports: list[int] = []

    def loop(stop_event: threading.Event) -> None:
        ran.set()
        stop_event.wait()

    import nightops.slack_host as host

    original = host.start_http

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        server = original(*args, **kwargs)
        ports.append(server.port)
        return server

    monkeypatch.setattr(host, "start_http", spy)
    try:
        thread = threading.Thread(
            target=serve,
            args=(load(fake, tmp_path),),
            kwargs={"socket_mode": False, "http_port": 0, "background": [loop], "stop": stop},
        )
        thread.start()
        assert ran.wait(5)
        deadline = time.monotonic() + 5
        while not ports and time.monotonic() < deadline:
            time.sleep(0.01)
        body = urlencode(
            {"team_id": "T1", "user_id": "UALICE", "channel_id": "CDEV1",
             "channel_name": "dev-team", "command": "/nightops", "text": "whoami",
             "trigger_id": "t-1", "response_url": fake.response_url("h1")}
        ).encode()  # fmt: skip
        timestamp = str(int(time.time()))
        signature = SignatureVerifier("sekrit").generate_signature(timestamp=timestamp, body=body)
        conn = http.client.HTTPConnection("127.0.0.1", ports[0], timeout=10)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": signature or "",
        }
        conn.request("POST", "/slack/events", body, headers)
        response = conn.getresponse()
        ack = json.loads(response.read())
        conn.close()
        assert response.status == 200
        assert "alice@company.com" in json.dumps(ack, ensure_ascii=False)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
