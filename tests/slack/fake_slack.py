"""A fake Slack Web API on an ephemeral port: records every call and answers like Slack
(``{"ok": false, "error": …}``, ``channel_not_found``, ``not_in_channel``, 429 with
``Retry-After`` on demand), plus a ``response_url`` receiver. slack-sdk's WebClient talks
to it through ``base_url`` (it uses urllib, so nothing else can intercept it)."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import attrs


@attrs.define
class Call:
    method: str
    args: dict[str, Any]
    token: str | None


@attrs.define
class Posted:
    channel: str
    ts: str
    text: str
    blocks: list[Any]
    user: str | None = None  # ephemeral: who sees it


class FakeSlack:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.responses: list[tuple[str, dict[str, Any]]] = []  # (response_url id, body)
        self.users: dict[str, dict[str, Any]] = {}
        self.channels: dict[str, str] = {}  # id -> name
        self.bot_in: set[str] = set()
        self.messages: dict[tuple[str, str], Posted] = {}
        self.rate_limit: dict[str, int] = {}  # method -> 429s still to give
        self.errors: dict[str, str] = {}  # method -> error to give once
        self.ws_url = ""
        self.usergroups: dict[str, tuple[str, list[str]]] = {}  # id -> (handle, members)
        self.tokens = {"xoxb-test": "T1"}
        self.oauth_codes = {"good-code": ("T2", "Second Team", "xoxb-second")}
        self._ts = itertools.count(1)
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # --- set-up ------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def response_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/respond/{name}"

    def add_user(
        self, user_id: str, name: str, email: str | None, team: str = "T1", **extra: Any
    ) -> None:
        profile = {"display_name": name, "email": email} if email else {"display_name": name}
        self.users[user_id] = {"id": user_id, "name": name, "team_id": team, "profile": profile}
        self.users[user_id].update(extra)

    def add_channel(self, channel_id: str, name: str, *, bot_member: bool = True) -> None:
        self.channels[channel_id] = name
        if bot_member:
            self.bot_in.add(channel_id)

    def start(self) -> FakeSlack:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- reading what happened ---------------------------------------------------------

    def called(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def responses_to(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [body for url, body in self.responses if url == name]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.01)
        raise AssertionError("timed out waiting for the fake Slack to see it")

    def posts_in(self, channel: str) -> list[Posted]:
        with self._lock:
            return [m for m in self.messages.values() if m.channel == channel]

    # --- the API -----------------------------------------------------------------------

    def _resolve(self, channel: str) -> tuple[str | None, str | None]:
        """(channel id, error)."""
        if channel.startswith("#"):
            found = [cid for cid, name in self.channels.items() if name == channel[1:]]
            if not found:
                return None, "channel_not_found"
            channel = found[0]
        if channel.startswith("D"):
            return channel, None
        if channel not in self.channels:
            return None, "channel_not_found"
        if channel not in self.bot_in:
            return None, "not_in_channel"
        return channel, None

    def api(self, method: str, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        if method in self.errors:
            return {"ok": False, "error": self.errors.pop(method)}
        match method:
            case "auth.test":
                team = self.tokens.get(token or "")
                if team is None:
                    return {"ok": False, "error": "invalid_auth"}
                return {"ok": True, "team_id": team, "user_id": "UBOT", "bot_id": "BBOT"}
            case "usergroups.list":
                groups = [{"id": i, "handle": h} for i, (h, _) in self.usergroups.items()]
                return {"ok": True, "usergroups": groups}
            case "usergroups.users.list":
                group = self.usergroups.get(str(args.get("usergroup")))
                return {"ok": True, "users": group[1]} if group else _error("no_such_subteam")
            case "users.info":
                user = self.users.get(str(args.get("user")))
                return {"ok": True, "user": user} if user else _error("user_not_found")
            case "users.lookupByEmail":
                email = str(args.get("email", "")).lower()
                for user in self.users.values():
                    if (user["profile"].get("email") or "").lower() == email:
                        return {"ok": True, "user": user}
                return _error("users_not_found")
            case "conversations.open":
                users = args.get("users")
                user = users[0] if isinstance(users, list) else str(users).split(",")[0]
                return {"ok": True, "channel": {"id": f"D{user}"}}
            case "chat.postMessage":
                channel, error = self._resolve(str(args.get("channel")))
                if error or channel is None:
                    return _error(error or "channel_not_found")
                ts = f"{1700000000 + next(self._ts)}.000100"
                self.messages[(channel, ts)] = Posted(
                    channel, ts, str(args.get("text", "")), list(args.get("blocks") or [])
                )
                return {"ok": True, "channel": channel, "ts": ts}
            case "chat.update":
                key = (str(args.get("channel")), str(args.get("ts")))
                if key not in self.messages:
                    return _error("message_not_found")
                self.messages[key].text = str(args.get("text", ""))
                self.messages[key].blocks = list(args.get("blocks") or [])
                return {"ok": True, "channel": key[0], "ts": key[1]}
            case "chat.postEphemeral":
                channel, error = self._resolve(str(args.get("channel")))
                if error or channel is None:
                    return _error(error or "channel_not_found")
                ts = f"{1700000000 + next(self._ts)}.000200"
                self.messages[(channel, ts)] = Posted(
                    channel,
                    ts,
                    str(args.get("text", "")),
                    list(args.get("blocks") or []),
                    str(args.get("user")),
                )
                return {"ok": True, "message_ts": ts}
            case "views.open":
                if args.get("trigger_id") == "expired":
                    return _error("expired_trigger_id")
                return {"ok": True, "view": {"id": f"V{next(self._ts)}"}}
            case "oauth.v2.access":
                found = self.oauth_codes.get(str(args.get("code")))
                if found is None:
                    return _error("invalid_code")
                team, name, new_token = found
                self.tokens[new_token] = team
                return {
                    "ok": True,
                    "access_token": new_token,
                    "token_type": "bot",
                    "scope": "commands,chat:write",
                    "bot_user_id": "UBOT2",
                    "app_id": "A1",
                    "team": {"id": team, "name": name},
                    "enterprise": None,
                    "authed_user": {"id": "UINSTALLER"},
                    "is_enterprise_install": False,
                }
            case "apps.connections.open":
                return {"ok": True, "url": self.ws_url}
        return _error("unknown_method")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _args(self) -> tuple[dict[str, Any], str | None]:
                url = urlsplit(self.path)
                args: dict[str, Any] = dict(parse_qsl(url.query))
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if raw:
                    if (self.headers.get("Content-Type") or "").startswith("application/json"):
                        args.update(json.loads(raw))
                    else:
                        args.update(dict(parse_qsl(raw.decode())))
                for key in ("blocks", "view", "users"):
                    if isinstance(args.get(key), str) and args[key][:1] in "[{":
                        args[key] = json.loads(args[key])
                auth = self.headers.get("Authorization") or ""
                token = auth.removeprefix("Bearer ") if auth else args.pop("token", None)
                return args, token

            def _send(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self.do_POST()

            def do_POST(self) -> None:
                args, token = self._args()
                path = urlsplit(self.path).path
                if path.startswith("/respond/"):
                    with fake._lock:
                        fake.responses.append((path.removeprefix("/respond/"), args))
                    self._send(200, {"ok": True}, {})
                    return
                method = path.removeprefix("/api/")
                with fake._lock:
                    fake.calls.append(Call(method, args, token))
                    if fake.rate_limit.get(method):
                        fake.rate_limit[method] -= 1
                        self._send(429, _error("ratelimited"), {"Retry-After": "0"})
                        return
                    answer = fake.api(method, args, token)
                self._send(200, answer, {})

        return Handler


def _error(error: str) -> dict[str, Any]:
    return {"ok": False, "error": error}
