"""A local stand-in of PagerDuty for the real ``pagerduty`` package, over https (the package
refuses any other scheme) with a trustme CA: give the client ``verify=fake.ssl_context()``.

Emulated:

    POST /v2/enqueue   Events API v2: trigger | acknowledge | resolve. Answers 202
                       {"status": "success", "message": "Event processed", "dedup_key": …};
                       400 {"status": "invalid event", "errors": [...]} for a missing
                       routing_key, a bad event_action, a trigger without
                       payload.summary/source/severity, a bad severity, a non-trigger
                       without dedup_key, or a dedup_key over 255 characters.
    GET  /oncalls      REST API v2: {"oncalls": [...], "limit", "offset", "more": false};
                       filters schedule_ids[] / escalation_policy_ids[]; with include[]=users
                       the user is the full object (with its email), else a reference.
                       401 without ``Authorization: Token token=…``.

:attr:`FakePagerDuty.events` keeps every accepted event; :attr:`alerts` the state of each
dedup key (triggered / resolved), as PagerDuty would group them. :meth:`fail_next` makes
the next requests answer a given status.
"""

from __future__ import annotations

import json
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trustme

SEVERITIES = {"critical", "error", "warning", "info"}


class FakePagerDuty:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[dict[str, Any]] = []
        self.alerts: dict[str, str] = {}
        self.requests: list[tuple[str, str, dict[str, list[str]], str]] = []
        #: (schedule id, escalation policy id, level, user) rows answered by /oncalls.
        self.oncalls: list[tuple[str, str, int, dict[str, str]]] = []
        self._failures: list[int] = []
        self._dir = tempfile.TemporaryDirectory(prefix="fake-pagerduty-")
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(server_context)
        self.ca_path = str(Path(self._dir.name) / "ca.pem")
        ca.cert_pem.write_to_path(self.ca_path)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def setup(self) -> None:
                if isinstance(self.request, ssl.SSLSocket):
                    self.request.do_handshake()
                super().setup()

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                auth = self.headers.get("Authorization", "")
                status, payload = outer._handle(self.command, parts.path, query, body, auth)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.socket = server_context.wrap_socket(
            self._server.socket, server_side=True, do_handshake_on_connect=False
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.01,), daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_path)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._dir.cleanup()

    # -- control ------------------------------------------------------------------------------

    def put_oncall(
        self,
        user: dict[str, str],
        *,
        schedule: str = "",
        escalation_policy: str = "",
        level: int = 1,
    ) -> None:
        with self._lock:
            self.oncalls.append((schedule, escalation_policy, level, user))

    def fail_next(self, status: int, times: int = 1) -> None:
        with self._lock:
            self._failures.extend([status] * times)

    @property
    def pending_failures(self) -> int:
        with self._lock:
            return len(self._failures)

    def actions(self) -> list[tuple[str, str]]:
        """(event_action, dedup_key) of every accepted event, in order."""
        with self._lock:
            return [(e["event_action"], e.get("dedup_key", "")) for e in self.events]

    # -- the API ------------------------------------------------------------------------------

    def _handle(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes, auth: str
    ) -> tuple[int, Any]:
        with self._lock:
            self.requests.append((method, path, query, auth))
            if self._failures:
                status = self._failures.pop(0)
                return status, {"status": "error", "message": f"injected {status}"}
        if method == "POST" and path == "/v2/enqueue":
            return self._enqueue(body)
        if method == "GET" and path == "/oncalls":
            return self._oncalls(query, auth)
        return 404, {"error": {"message": f"{method} {path} is not emulated"}}

    def _enqueue(self, body: bytes) -> tuple[int, Any]:
        try:
            event = json.loads(body)
        except ValueError:
            return 400, {"status": "invalid event", "errors": ["body is not JSON"]}
        errors = []
        if not event.get("routing_key"):
            errors.append("'routing_key' is missing or blank")
        action = event.get("event_action")
        if action not in ("trigger", "acknowledge", "resolve"):
            errors.append("'event_action' is invalid")
        dedup = event.get("dedup_key")
        if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
            errors.append("'dedup_key' must be a string of at most 255 characters")
        if action == "trigger":
            payload = event.get("payload") or {}
            for field in ("summary", "source", "severity"):
                if not payload.get(field):
                    errors.append(f"'payload.{field}' is missing or blank")
            if payload.get("severity") and payload["severity"] not in SEVERITIES:
                errors.append("'payload.severity' is invalid")
        elif not dedup:
            errors.append("'dedup_key' is required for acknowledge and resolve")
        if errors:
            return 400, {
                "status": "invalid event",
                "message": "Event object is invalid",
                "errors": errors,
            }
        with self._lock:
            key = dedup or f"generated-{len(self.events)}"
            event["dedup_key"] = key
            self.events.append(event)
            if action == "trigger":
                self.alerts[key] = "triggered"
            elif action == "resolve" and key in self.alerts:
                self.alerts[key] = "resolved"
        return 202, {"status": "success", "message": "Event processed", "dedup_key": key}

    def _oncalls(self, query: dict[str, list[str]], auth: str) -> tuple[int, Any]:
        if not auth.startswith("Token token="):
            return 401, {"error": {"message": "Unauthorized", "code": 2006}}
        schedules = set(query.get("schedule_ids[]", []))
        policies = set(query.get("escalation_policy_ids[]", []))
        full = "users" in query.get("include[]", [])
        rows = []
        with self._lock:
            for schedule, policy, level, user in self.oncalls:
                if schedules and schedule not in schedules:
                    continue
                if policies and policy not in policies:
                    continue
                shown = (
                    dict(user)
                    if full
                    else {"id": user["id"], "type": "user_reference", "summary": user["name"]}
                )
                rows.append(
                    {
                        "user": shown,
                        "schedule": {"id": schedule, "type": "schedule_reference"}
                        if schedule
                        else None,
                        "escalation_policy": {
                            "id": policy or "PEP0",
                            "type": "escalation_policy_reference",
                        },
                        "escalation_level": level,
                        "start": "2026-11-01T00:00:00Z",
                        "end": "2026-11-08T00:00:00Z",
                    }
                )
        limit = int(query.get("limit", ["100"])[0])
        offset = int(query.get("offset", ["0"])[0])
        page = rows[offset : offset + limit]
        return 200, {
            "oncalls": page,
            "limit": limit,
            "offset": offset,
            "more": offset + limit < len(rows),
            "total": None,
        }
