"""Socket Mode: Slack pushes commands and clicks over a WebSocket (no public URL needed),
with slack-sdk's built-in thread-based ``SocketModeClient``. Each envelope is acked with
the same body the HTTP endpoint would return (:meth:`SlackAdapter.on_command` /
:meth:`SlackAdapter.on_interaction`); the socket itself is authenticated by the app-level
token (``xapp-…``, scope ``connections:write``), so envelopes carry no signature."""

from __future__ import annotations

import logging
import threading

from slack_sdk.socket_mode import SocketModeClient
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from nightops_slack.adapter import SlackAdapter

__all__ = ["SocketModeTransport"]

log = logging.getLogger("nightops.slack")


class SocketModeTransport:
    """Connects ``adapter`` to Slack over Socket Mode."""

    def __init__(
        self,
        adapter: SlackAdapter,
        *,
        app_token: str,
        ping_interval: float = 5,
    ) -> None:
        self.adapter = adapter
        # apps.connections.open goes to the configured API URL, with the app token.
        web_client = adapter.messenger.clients.anonymous()
        self.client = SocketModeClient(
            app_token=app_token, web_client=web_client, ping_interval=ping_interval
        )
        self.client.socket_mode_request_listeners.append(self._on_request)

    def _on_request(self, client: BaseSocketModeClient, request: SocketModeRequest) -> None:
        payload = None
        try:
            if request.type == "slash_commands":
                retry = str(request.retry_attempt) if request.retry_attempt else None
                payload = self.adapter.on_command(request.payload, retry=retry)
            elif request.type == "interactive":
                payload = self.adapter.on_interaction(request.payload)
        except Exception:  # the listener thread must ack whatever happens
            log.exception("handling a Socket Mode %s envelope failed", request.type)
        client.send_socket_mode_response(
            SocketModeResponse(envelope_id=request.envelope_id, payload=payload)
        )

    def connect(self) -> None:
        self.client.connect()

    def run(self, stop: threading.Event) -> None:
        """Connect, then serve until ``stop`` is set (reconnecting as Slack asks)."""
        self.connect()
        try:
            stop.wait()
        finally:
            self.close()

    def close(self) -> None:
        self.client.close()
