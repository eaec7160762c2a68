"""Embedding: NightOps registered into an existing slack-bolt App, served by waitress
through Bolt's WSGI adapter; signed requests with the real SignatureVerifier."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from conftest import SECRET, World
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier

from nightops.slack_host import HttpServer, start_http
from nightops_slack.bolt import messenger_for, register


@pytest.fixture
def bolt_server(world: World) -> Iterator[HttpServer]:
    client = WebClient(token="xoxb-test", base_url=world.fake.api_url)
    app = App(client=client, signing_secret=SECRET, token_verification_enabled=False)

    @app.command("/deploy")  # the team's own bot keeps its own commands
    def deploy(ack):  # type: ignore[no-untyped-def]
        ack("deploying")

    messenger = messenger_for(app, store=world.store, clock=world.clock)
    assert messenger.clients.api_url == world.fake.api_url
    register(app, world.service, messenger)
    server = start_http(SlackRequestHandler(app))
    yield server
    server.stop()


def post(server: HttpServer, form: dict[str, str]) -> tuple[int, bytes]:
    body = urlencode(form).encode()
    timestamp = str(int(time.time()))
    signature = SignatureVerifier(SECRET).generate_signature(timestamp=timestamp, body=body)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request(
        "POST",
        "/slack/events",
        body,
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": signature or "",
        },
    )
    try:
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_nightops_commands_and_buttons_inside_a_bolt_app(
    world: World, bolt_server: HttpServer
) -> None:
    command = {
        "team_id": "T1",
        "channel_id": "CDEV1",
        "channel_name": "dev-team",
        "user_id": "UALICE",
        "user_name": "alice",
        "command": "/nightops",
        "text": "help",
        "response_url": world.fake.response_url("bolt1"),
        "trigger_id": "bolt-trigger-1",
    }
    status, body = post(bolt_server, command)
    assert status == 200
    assert "NightOps help" in body.decode()
    status, body = post(bolt_server, {**command, "text": "status", "trigger_id": "t2"})
    assert body == b""  # it asks the cloud: an empty ack, then the answer
    (overview,) = world.wait_responses("bolt1")
    assert "Staging API" in json.dumps(overview["blocks"])

    status, body = post(bolt_server, {**command, "command": "/deploy", "trigger_id": "x"})
    assert body == b"deploying"

    click = {
        "type": "block_actions",
        "team": {"id": "T1"},
        "user": {"id": "UALICE", "username": "alice", "team_id": "T1"},
        "channel": {"id": "CDEV1", "name": "dev-team"},
        "response_url": world.fake.response_url("bolt2"),
        "trigger_id": "bolt-trigger-2",
        "actions": [{"action_id": "nightops.details", "value": "staging-api",
                     "action_ts": "1700000009.1", "type": "button", "block_id": "b"}],
    }  # fmt: skip
    status, _ = post(bolt_server, {"payload": json.dumps(click)})
    assert status == 200
    (detail,) = world.wait_responses("bolt2")
    assert "api-server-1" in json.dumps(detail["blocks"])
