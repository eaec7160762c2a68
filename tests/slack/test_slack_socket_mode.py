"""Socket Mode through slack-sdk's built-in SocketModeClient, against a local WebSocket
server speaking the envelope protocol (apps.connections.open on the fake Web API hands
out its ws:// URL)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from conftest import World
from fake_socket import FakeSocketMode

from nightops_slack import SocketModeTransport


@pytest.fixture
def socket_server(world: World) -> Iterator[FakeSocketMode]:
    server = FakeSocketMode()
    world.fake.ws_url = server.url
    yield server
    server.close()


def test_command_and_click_over_socket_mode(world: World, socket_server: FakeSocketMode) -> None:
    transport = SocketModeTransport(world.adapter, app_token="xapp-1-test")
    try:
        transport.connect()
        opened = world.fake.called("apps.connections.open")
        assert opened
        assert opened[0].token == "xapp-1-test"
        socket_server.push(
            {
                "envelope_id": "env-1",
                "type": "slash_commands",
                "accepts_response_payload": True,
                "payload": {
                    "team_id": "T1",
                    "channel_id": "CDEV1",
                    "channel_name": "dev-team",
                    "user_id": "UALICE",
                    "user_name": "alice",
                    "command": "/nightops",
                    "text": "whoami",
                    "response_url": world.fake.response_url("sm1"),
                    "trigger_id": "sm-trigger-1",
                },
            }
        )
        ack = socket_server.ack_for("env-1")
        assert "alice@company.com" in json.dumps(ack["payload"], ensure_ascii=False)
        assert ack["payload"]["response_type"] == "ephemeral"

        socket_server.push(
            {
                "envelope_id": "env-2",
                "type": "interactive",
                "accepts_response_payload": False,
                "payload": {
                    "type": "block_actions",
                    "team": {"id": "T1"},
                    "user": {"id": "UALICE", "username": "alice"},
                    "channel": {"id": "CDEV1", "name": "dev-team"},
                    "response_url": world.fake.response_url("sm2"),
                    "trigger_id": "sm-trigger-2",
                    "actions": [
                        {
                            "action_id": "nightops.details",
                            "value": "staging-api",
                            "action_ts": "1700000001.1",
                        }
                    ],
                },
            }
        )
        assert socket_server.ack_for("env-2") == {"envelope_id": "env-2"}
        (detail,) = world.wait_responses("sm2")
        assert "api-server-1" in json.dumps(detail["blocks"])
    finally:
        transport.close()
