"""A local stand-in of the Compute Engine REST API (v1), for the real google-cloud-compute
clients. No Compute Engine emulator exists; this speaks just what NightOps calls.

Emulated calls (``/compute/v1/projects/{project}/…``)::

    GET  zones/{zone}/instances/{name}                      instances.get
    GET  zones/{zone}/instances                             instances.list
    GET  aggregated/instances?filter=(labels.k = "v") …      instances.aggregatedList
    POST zones/{zone}/instances/{name}/start?requestId=      instances.start
    POST zones/{zone}/instances/{name}/stop?requestId=       instances.stop
    POST zones/{zone}/instances/{name}/suspend?requestId=    instances.suspend
    POST zones/{zone}/instances/{name}/resume?requestId=     instances.resume
    GET  zones/{zone}/operations/{op}                        zoneOperations.get
    POST zones/{zone}/operations/{op}/wait                   zoneOperations.wait (blocks until
                                                             done, at most ``wait_cap`` s)
    GET  zones/{zone}/instanceGroupManagers/{name}           instanceGroupManagers.get
    POST zones/{zone}/instanceGroupManagers/{name}/resize?size=&requestId=
                                                             instanceGroupManagers.resize
    GET  aggregated/instanceGroupManagers                    instanceGroupManagers.aggregatedList

Behaviour: a mutating call returns a zonal Operation (``RUNNING``) and the resource goes
through STAGING / STOPPING / SUSPENDING for ``transition_seconds``; then the operation is
``DONE`` and the resource RUNNING / TERMINATED / SUSPENDED. A ``requestId`` seen before returns
the first call's operation without acting again (as Compute Engine does). Every request
costs ``latency`` seconds and is recorded in :attr:`FakeGce.requests`.

Faults: per resource (:meth:`FakeGce.inject`): ``fail-start`` / ``fail-stop`` (403 on the
call), ``fallback`` (start accepted, instance ends TERMINATED), ``stuck`` (operations never
finish), ``missing`` (404), ``capacity`` (the start operation ends with
ZONE_RESOURCE_POOL_EXHAUSTED). Per request (:meth:`FakeGce.fail_next`): the next N requests
matching a method and path regex answer 403/404/409/429 (+ Retry-After)/5xx, optionally
after acting (a lost response).
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PREFIX = "/compute/v1/projects/"
BASE_LINK = "https://www.googleapis.com/compute/v1/projects/"


@dataclass
class Recorded:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    host: str
    authorization: str = ""


@dataclass
class Injected:
    method: str
    pattern: re.Pattern[str]
    status: int
    times: int
    retry_after: str | None
    reason: str
    act_first: bool


class LocalJsonServer:
    """A ThreadingHTTPServer on 127.0.0.1 that hands each request to ``handle`` and records it.

    ``handle(method, path, query, body) -> (status, json body, headers)``. Used by both the
    Compute Engine and the ARM fakes; ``ssl_context`` turns it into https.
    """

    def __init__(
        self,
        handle: Callable[[str, str, dict[str, str], bytes], tuple[int, Any, Mapping[str, str]]],
        *,
        latency: float = 0.0,
        ssl_context: Any = None,
    ) -> None:
        self.latency = latency
        self.requests: list[Recorded] = []
        #: Requests being served right now, and the most at any one time.
        self.in_flight = 0
        self.peak_in_flight = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else each keep-alive request stalls ~40 ms

            def setup(self) -> None:
                if isinstance(self.request, ssl.SSLSocket):
                    self.request.do_handshake()  # here, not in the accepting thread
                super().setup()

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with outer._lock:
                    outer.requests.append(
                        Recorded(
                            self.command,
                            parts.path,
                            query,
                            self.headers.get("Host", ""),
                            self.headers.get("Authorization", ""),
                        )
                    )
                    outer.in_flight += 1
                    outer.peak_in_flight = max(outer.peak_in_flight, outer.in_flight)
                try:
                    if outer.latency:
                        time.sleep(outer.latency)
                    status, payload, headers = handle(self.command, parts.path, query, body)
                finally:
                    with outer._lock:
                        outer.in_flight -= 1
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # a burst of new connections must not overflow
            daemon_threads = True

        self._server = Server(("127.0.0.1", 0), Handler)
        if ssl_context is not None:
            self._server.socket = ssl_context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.01,), daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def recorded(self) -> list[Recorded]:
        with self._lock:
            return list(self.requests)

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
            self.peak_in_flight = self.in_flight

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@dataclass
class _Instance:
    project: str
    zone: str
    name: str
    status: str
    labels: dict[str, str] = field(default_factory=dict)
    machine_type: str = "e2-medium"
    created_by: str = ""
    faults: set[str] = field(default_factory=set)


@dataclass
class _Group:
    project: str
    zone: str
    name: str
    target_size: int
    labels: dict[str, str] = field(default_factory=dict)
    stable_at: float = 0.0
    faults: set[str] = field(default_factory=set)


@dataclass
class _Operation:
    name: str
    project: str
    zone: str
    kind: str  # start / stop / suspend / resume / resize
    target: str
    done_at: float
    finish: Callable[[], None]
    error: tuple[str, str] | None = None
    finished: bool = False


def _error(status: int, message: str, reason: str) -> dict[str, Any]:
    return {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"domain": "global", "reason": reason, "message": message}],
        }
    }


_REASONS = {
    403: "forbidden",
    404: "notFound",
    409: "resourceNotReady",
    429: "rateLimitExceeded",
    500: "backendError",
    503: "backendError",
}

_TRANSITIONS = {
    # verb: (wanted status before, status while acting, status after)
    "start": ({"TERMINATED", "STOPPED"}, "STAGING", "RUNNING"),
    "resume": ({"SUSPENDED"}, "STAGING", "RUNNING"),
    "stop": ({"RUNNING", "SUSPENDED"}, "STOPPING", "TERMINATED"),
    "suspend": ({"RUNNING"}, "SUSPENDING", "SUSPENDED"),
}


class FakeGce:
    """The fake Compute Engine. ``url`` is the ``api_endpoint`` to give the clients."""

    def __init__(
        self, *, latency: float = 0.0, transition_seconds: float = 0.0, wait_cap: float = 0.2
    ) -> None:
        self.transition_seconds = transition_seconds
        self.wait_cap = wait_cap
        self._lock = threading.RLock()
        self._instances: dict[tuple[str, str, str], _Instance] = {}
        self._groups: dict[tuple[str, str, str], _Group] = {}
        self._operations: dict[str, _Operation] = {}
        self._request_ids: dict[str, str] = {}
        self._injected: list[Injected] = []
        #: (verb, instance or group name) of each mutating call that acted.
        self.acted: list[tuple[str, str]] = []
        #: (verb, name, requestId) of every mutating call received, acting or not.
        self.mutations: list[tuple[str, str, str]] = []
        self.server = LocalJsonServer(self._handle, latency=latency)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def requests(self) -> list[Recorded]:
        return self.server.recorded()

    def close(self) -> None:
        self.server.close()

    # -- control ------------------------------------------------------------------------------

    def add_instance(
        self,
        project: str,
        zone: str,
        name: str,
        status: str = "RUNNING",
        *,
        labels: Mapping[str, str] | None = None,
        machine_type: str = "e2-medium",
        created_by: str = "",
    ) -> None:
        with self._lock:
            self._instances[project, zone, name] = _Instance(
                project, zone, name, status, dict(labels or {}), machine_type, created_by
            )

    def add_group(
        self,
        project: str,
        zone: str,
        name: str,
        target_size: int,
        *,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        with self._lock:
            self._groups[project, zone, name] = _Group(
                project, zone, name, target_size, dict(labels or {})
            )

    def status(self, project: str, zone: str, name: str) -> str:
        with self._lock:
            self._settle()
            return self._instances[project, zone, name].status

    def set_status(self, project: str, zone: str, name: str, status: str) -> None:
        with self._lock:
            self._instances[project, zone, name].status = status

    def group_size(self, project: str, zone: str, name: str) -> int:
        with self._lock:
            self._settle()
            return self._groups[project, zone, name].target_size

    def inject(self, project: str, zone: str, name: str, fault: str) -> None:
        with self._lock:
            if fault == "missing":
                self._instances.pop((project, zone, name), None)
                self._groups.pop((project, zone, name), None)
                return
            target = self._instances.get((project, zone, name)) or self._groups[project, zone, name]
            target.faults.add(fault)

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int,
        *,
        times: int = 1,
        retry_after: str | None = None,
        reason: str | None = None,
        act_first: bool = False,
    ) -> None:
        """The next ``times`` requests matching answer ``status`` (after acting, if
        ``act_first``: the response is lost but the call took effect)."""
        with self._lock:
            self._injected.append(
                Injected(
                    method,
                    re.compile(path_regex),
                    status,
                    times,
                    retry_after,
                    reason or _REASONS.get(status, "error"),
                    act_first,
                )
            )

    # -- the API --------------------------------------------------------------------------------

    def _handle(
        self, method: str, path: str, query: dict[str, str], body: bytes
    ) -> tuple[int, Any, Mapping[str, str]]:
        with self._lock:
            self._settle()
            injected = self._take_injected(method, path)
            if injected is not None and not injected.act_first:
                return self._injected_response(injected)
            if method == "POST" and path.endswith("/wait"):
                answer = None  # waits outside the lock
            else:
                answer = self._route(method, path, query)
            if injected is not None:
                return self._injected_response(injected)
        if answer is None:
            return self._wait(path)
        return answer

    def _take_injected(self, method: str, path: str) -> Injected | None:
        for item in self._injected:
            if item.method == method and item.pattern.search(path) and item.times > 0:
                item.times -= 1
                return item
        return None

    @staticmethod
    def _injected_response(item: Injected) -> tuple[int, Any, Mapping[str, str]]:
        headers = {"Retry-After": item.retry_after} if item.retry_after is not None else {}
        return item.status, _error(item.status, f"injected {item.status}", item.reason), headers

    def _route(
        self, method: str, path: str, query: dict[str, str]
    ) -> tuple[int, Any, Mapping[str, str]]:
        if not path.startswith(PREFIX):
            return 404, _error(404, f"unknown path {path}", "notFound"), {}
        parts = path[len(PREFIX) :].split("/")
        project = parts[0]
        rest = parts[1:]
        ok: dict[str, str] = {}
        if rest == ["aggregated", "instances"] and method == "GET":
            return 200, self._aggregated_instances(project, query.get("filter", "")), ok
        if rest == ["aggregated", "instanceGroupManagers"] and method == "GET":
            return 200, self._aggregated_groups(project), ok
        if len(rest) < 3 or rest[0] != "zones":
            return 404, _error(404, f"unknown path {path}", "notFound"), {}
        zone, collection, tail = rest[1], rest[2], rest[3:]
        if collection == "instances":
            if not tail and method == "GET":
                items = [
                    self._instance_json(i)
                    for i in self._instances.values()
                    if i.project == project and i.zone == zone
                ]
                return 200, {"items": items}, ok
            return self._instance_call(method, project, zone, tail, query)
        if collection == "operations" and tail:
            op = self._operations.get(tail[0])
            if op is None:
                return 404, _error(404, f"operation {tail[0]} not found", "notFound"), {}
            return 200, self._operation_json(op), ok
        if collection == "instanceGroupManagers" and tail:
            return self._group_call(method, project, zone, tail, query)
        return 404, _error(404, f"unknown path {path}", "notFound"), {}

    def _instance_call(
        self, method: str, project: str, zone: str, tail: list[str], query: dict[str, str]
    ) -> tuple[int, Any, Mapping[str, str]]:
        name = tail[0]
        instance = self._instances.get((project, zone, name))
        where = f"projects/{project}/zones/{zone}/instances/{name}"
        if instance is None:
            return 404, _error(404, f"The resource '{where}' was not found", "notFound"), {}
        if len(tail) == 1 and method == "GET":
            return 200, self._instance_json(instance), {}
        if len(tail) == 2 and method == "POST" and tail[1] in _TRANSITIONS:
            verb = tail[1]
            request_id = query.get("requestId", "")
            self.mutations.append((verb, name, request_id))
            if request_id and request_id in self._request_ids:
                return (
                    200,
                    self._operation_json(self._operations[self._request_ids[request_id]]),
                    {},
                )
            if f"fail-{verb}" in instance.faults or (
                verb in ("suspend", "resume")
                and f"fail-{'stop' if verb == 'suspend' else 'start'}" in instance.faults
            ):
                return (
                    403,
                    _error(
                        403,
                        f"Required 'compute.instances.{verb}' permission for '{where}'",
                        "forbidden",
                    ),
                    {},
                )
            before, during, after = _TRANSITIONS[verb]
            if instance.status not in before and instance.status != after:
                return 400, _error(400, f"instance is {instance.status}", "resourceNotReady"), {}
            op = self._begin(instance, verb, during, after, request_id)
            return 200, self._operation_json(op), {}
        return 404, _error(404, "unknown instance call", "notFound"), {}

    def _begin(
        self, instance: _Instance, verb: str, during: str, after: str, request_id: str
    ) -> _Operation:
        if instance.status == after:  # a repeated call: harmless, like Compute Engine
            op = self._new_op(instance.project, instance.zone, verb, instance.name, lambda: None)
            op.done_at = 0.0
        else:
            self.acted.append((verb, instance.name))
            instance.status = during
            lands = after
            error = None
            if verb == "start" and "fallback" in instance.faults:
                lands = "TERMINATED"
            if verb == "start" and "capacity" in instance.faults:
                lands = "TERMINATED"
                error = (
                    "ZONE_RESOURCE_POOL_EXHAUSTED",
                    f"The zone '{instance.zone}' does "
                    "not have enough resources available to fulfill the request.",
                )

            def finish() -> None:
                instance.status = lands

            op = self._new_op(instance.project, instance.zone, verb, instance.name, finish)
            op.error = error
            if "stuck" in instance.faults:
                op.done_at = float("inf")
        if request_id:
            self._request_ids[request_id] = op.name
        return op

    def _new_op(
        self, project: str, zone: str, kind: str, target: str, finish: Callable[[], None]
    ) -> _Operation:
        name = f"operation-{uuid.uuid4().hex[:16]}"
        op = _Operation(
            name, project, zone, kind, target, time.monotonic() + self.transition_seconds, finish
        )
        self._operations[name] = op
        return op

    def _group_call(
        self, method: str, project: str, zone: str, tail: list[str], query: dict[str, str]
    ) -> tuple[int, Any, Mapping[str, str]]:
        name = tail[0]
        group = self._groups.get((project, zone, name))
        where = f"projects/{project}/zones/{zone}/instanceGroupManagers/{name}"
        if group is None:
            return 404, _error(404, f"The resource '{where}' was not found", "notFound"), {}
        if len(tail) == 1 and method == "GET":
            return 200, self._group_json(group), {}
        if tail[1:] == ["resize"] and method == "POST":
            request_id = query.get("requestId", "")
            self.mutations.append(("resize", name, request_id))
            if request_id and request_id in self._request_ids:
                return (
                    200,
                    self._operation_json(self._operations[self._request_ids[request_id]]),
                    {},
                )
            size = int(query["size"])
            verb = "start" if size > 0 else "stop"
            if f"fail-{verb}" in group.faults:
                return (
                    403,
                    _error(
                        403,
                        f"Required 'compute.instanceGroupManagers.update' permission for '{where}'",
                        "forbidden",
                    ),
                    {},
                )
            self.acted.append(("resize", name))
            group.target_size = size
            group.stable_at = time.monotonic() + self.transition_seconds
            op = self._new_op(project, zone, "resize", name, lambda: None)
            if request_id:
                self._request_ids[request_id] = op.name
            return 200, self._operation_json(op), {}
        return 404, _error(404, "unknown group call", "notFound"), {}

    def _wait(self, path: str) -> tuple[int, Any, Mapping[str, str]]:
        name = path.rstrip("/").split("/")[-2]
        deadline = time.monotonic() + self.wait_cap
        while True:
            with self._lock:
                self._settle()
                op = self._operations.get(name)
                if op is None:
                    return 404, _error(404, f"operation {name} not found", "notFound"), {}
                if op.finished or time.monotonic() >= deadline:
                    return 200, self._operation_json(op), {}
                left = min(op.done_at, deadline) - time.monotonic()
            time.sleep(max(0.0, min(left, 0.01)))

    def _settle(self) -> None:
        now = time.monotonic()
        for op in self._operations.values():
            if not op.finished and now >= op.done_at:
                op.finished = True
                op.finish()

    # -- JSON -----------------------------------------------------------------------------------

    def _instance_json(self, instance: _Instance) -> dict[str, Any]:
        zone_link = f"{BASE_LINK}{instance.project}/zones/{instance.zone}"
        data: dict[str, Any] = {
            "kind": "compute#instance",
            "name": instance.name,
            "zone": zone_link,
            "status": instance.status,
            "machineType": f"{zone_link}/machineTypes/{instance.machine_type}",
            "labels": instance.labels,
            "selfLink": f"{zone_link}/instances/{instance.name}",
        }
        if instance.created_by:
            data["metadata"] = {"items": [{"key": "created-by", "value": instance.created_by}]}
        return data

    def _group_json(self, group: _Group) -> dict[str, Any]:
        zone_link = f"{BASE_LINK}{group.project}/zones/{group.zone}"
        return {
            "kind": "compute#instanceGroupManager",
            "name": group.name,
            "zone": zone_link,
            "targetSize": group.target_size,
            "status": {"isStable": time.monotonic() >= group.stable_at},
            "allInstancesConfig": {"properties": {"labels": group.labels}},
            "instanceTemplate": f"{BASE_LINK}{group.project}/global/instanceTemplates/t",
        }

    def _operation_json(self, op: _Operation) -> dict[str, Any]:
        zone_link = f"{BASE_LINK}{op.project}/zones/{op.zone}"
        data: dict[str, Any] = {
            "kind": "compute#operation",
            "name": op.name,
            "zone": zone_link,
            "operationType": op.kind,
            "targetLink": f"{zone_link}/instances/{op.target}",
            "status": "DONE" if op.finished else "RUNNING",
            "selfLink": f"{zone_link}/operations/{op.name}",
        }
        if op.finished and op.error is not None:
            code, message = op.error
            data["error"] = {"errors": [{"code": code, "message": message}]}
            data["httpErrorStatusCode"] = 503
        return data

    def _aggregated_instances(self, project: str, text: str) -> dict[str, Any]:
        wanted = dict(re.findall(r'labels\.([\w-]+) = "([^"]*)"', text))
        items: dict[str, Any] = {}
        for i in self._instances.values():
            if i.project == project and all(i.labels.get(k) == v for k, v in wanted.items()):
                items.setdefault(f"zones/{i.zone}", {"instances": []})["instances"].append(
                    self._instance_json(i)
                )
        return {"kind": "compute#instanceAggregatedList", "items": items}

    def _aggregated_groups(self, project: str) -> dict[str, Any]:
        items: dict[str, Any] = {}
        for g in self._groups.values():
            if g.project == project:
                entry = items.setdefault(f"zones/{g.zone}", {"instanceGroupManagers": []})
                entry["instanceGroupManagers"].append(self._group_json(g))
        return {"kind": "compute#instanceGroupManagerAggregatedList", "items": items}
