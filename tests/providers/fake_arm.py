"""A local stand-in of the Azure Resource Manager compute REST API, for the real
azure-mgmt-compute client. Served over https (a trustme CA: azure-core refuses to send a
bearer token over plain http); give the client ``connection_verify=fake.ca_path``.

Emulated calls (``/subscriptions/{sub}/…``, any api-version)::

    GET  resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{vm}[?$expand=instanceView]
    GET  resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{vm}/instanceView
    GET  resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines          (list)
    GET  providers/Microsoft.Compute/virtualMachines                              (listAll)
    POST resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{vm}/start
    POST resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{vm}/deallocate
    POST resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{vm}/powerOff
    …    the same for virtualMachineScaleSets/{name} (get, instanceView, list, listAll,
         start, deallocate, powerOff)
    GET  providers/Microsoft.Compute/locations/{loc}/operations/{id}              (LRO status)
    GET  providers/Microsoft.Compute/locations/{loc}/operations/{id}?monitor=true (Location)

The LRO pattern: a start / deallocate / powerOff answers 202 with ``Azure-AsyncOperation``
and ``Location`` headers (no Retry-After, so the client's ``polling_interval`` applies); the
operation is ``InProgress`` for ``transition_seconds`` (the VM ``starting`` /
``deallocating`` / ``stopping``), then ``Succeeded`` (or ``Failed`` with an error) and the
Location URL answers 200. Every request costs ``latency`` seconds and is recorded.

Faults per resource (:meth:`FakeArm.inject`): ``fail-start`` / ``fail-stop`` (403
AuthorizationFailed), ``fallback`` (start succeeds, the VM ends deallocated), ``stuck`` (the
LRO never finishes), ``missing`` (404 ResourceNotFound), ``capacity`` (the start LRO fails
with AllocationFailed), ``never-running`` (the start LRO succeeds, the VM stays ``starting``).
Per request (:meth:`FakeArm.fail_next`): 403/404/409/429 (+ Retry-After)/5xx.
"""

from __future__ import annotations

import re
import ssl
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
from fake_gce import Injected, LocalJsonServer, Recorded

API = "Microsoft.Compute"
_NOUNS = {"virtualmachines": "vm", "virtualmachinescalesets": "vmss"}
_TYPES = {"vm": "virtualMachines", "vmss": "virtualMachineScaleSets"}

# verb -> (power while acting, power after)
_TRANSITIONS = {
    "start": ("starting", "running"),
    "deallocate": ("deallocating", "deallocated"),
    "poweroff": ("stopping", "stopped"),
}


@dataclass
class _Machine:
    kind: str  # vm / vmss
    subscription: str
    group: str
    name: str
    location: str
    power: str
    size: str
    tags: dict[str, str] = field(default_factory=dict)
    capacity: int = 2
    faults: set[str] = field(default_factory=set)

    @property
    def arm_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.group}/providers/"
            f"{API}/{_TYPES[self.kind]}/{self.name}"
        )


@dataclass
class _Operation:
    id: str
    machine: _Machine
    done_at: float
    lands: str
    error: tuple[str, str] | None = None
    finished: bool = False


def _error(status: int, code: str, message: str) -> dict[str, Any]:
    del status
    return {"error": {"code": code, "message": message}}


_CODES = {
    403: "AuthorizationFailed",
    404: "ResourceNotFound",
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}


class FakeArm:
    """The fake ARM. ``url`` is the ``base_url``, ``ca_path`` the ``connection_verify``."""

    def __init__(self, *, latency: float = 0.0, transition_seconds: float = 0.0) -> None:
        self.transition_seconds = transition_seconds
        self._lock = threading.RLock()
        self._machines: dict[tuple[str, str, str, str], _Machine] = {}
        self._operations: dict[str, _Operation] = {}
        self._injected: list[Injected] = []
        #: (verb, name) of every start/deallocate/powerOff received (acting or not).
        self.mutations: list[tuple[str, str]] = []
        #: Authorization headers seen (to check a bearer token was sent).
        self.authorizations: set[str] = set()
        self._dir = tempfile.TemporaryDirectory(prefix="fake-arm-")
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        self.ca_path = str(Path(self._dir.name) / "ca.pem")
        ca.cert_pem.write_to_path(self.ca_path)
        self.server = LocalJsonServer(self._handle, latency=latency, ssl_context=context)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.port}"

    @property
    def requests(self) -> list[Recorded]:
        return self.server.recorded()

    def close(self) -> None:
        self.server.close()
        self._dir.cleanup()

    # -- control ------------------------------------------------------------------------------

    def add(
        self,
        subscription: str,
        group: str,
        name: str,
        power: str = "running",
        *,
        kind: str = "vm",
        location: str = "westeurope",
        size: str = "Standard_B2s",
        tags: Mapping[str, str] | None = None,
        capacity: int = 2,
    ) -> None:
        with self._lock:
            self._machines[kind, subscription, group.lower(), name] = _Machine(
                kind, subscription, group, name, location, power, size, dict(tags or {}), capacity
            )

    def power(self, subscription: str, group: str, name: str, kind: str = "vm") -> str:
        with self._lock:
            self._settle()
            return self._machines[kind, subscription, group.lower(), name].power

    def set_power(
        self, subscription: str, group: str, name: str, power: str, kind: str = "vm"
    ) -> None:
        with self._lock:
            self._machines[kind, subscription, group.lower(), name].power = power

    def inject(
        self, subscription: str, group: str, name: str, fault: str, kind: str = "vm"
    ) -> None:
        with self._lock:
            key = (kind, subscription, group.lower(), name)
            if fault == "missing":
                self._machines.pop(key, None)
            else:
                self._machines[key].faults.add(fault)

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int,
        *,
        times: int = 1,
        retry_after: str | None = None,
        code: str | None = None,
    ) -> None:
        with self._lock:
            self._injected.append(
                Injected(
                    method,
                    re.compile(path_regex, re.IGNORECASE),
                    status,
                    times,
                    retry_after,
                    code or _CODES.get(status, "Error"),
                    False,
                )
            )

    # -- the API --------------------------------------------------------------------------------

    def _handle(
        self, method: str, path: str, query: dict[str, str], body: bytes
    ) -> tuple[int, Any, Mapping[str, str]]:
        with self._lock:
            self._settle()
            for item in self._injected:
                if item.method == method and item.pattern.search(path) and item.times > 0:
                    item.times -= 1
                    headers = {"Retry-After": item.retry_after} if item.retry_after else {}
                    return (
                        item.status,
                        _error(item.status, item.reason, f"injected {item.status}"),
                        headers,
                    )
            return self._route(method, path, query)

    def _route(
        self, method: str, path: str, query: dict[str, str]
    ) -> tuple[int, Any, Mapping[str, str]]:
        parts = path.strip("/").split("/")
        lower = [p.lower() for p in parts]
        if len(parts) < 2 or lower[0] != "subscriptions":
            return 404, _error(404, "InvalidResourceType", path), {}
        subscription = parts[1]
        rest, low = parts[2:], lower[2:]
        # providers/Microsoft.Compute/locations/{loc}/operations/{id}
        if low[:3] == ["providers", API.lower(), "locations"] and len(rest) == 6:
            return self._operation(rest[5], monitor="monitor" in query)
        # providers/Microsoft.Compute/{type}  (listAll)
        if low[:2] == ["providers", API.lower()] and len(rest) == 3 and method == "GET":
            kind = _NOUNS.get(low[2])
            if kind is None:
                return 404, _error(404, "InvalidResourceType", path), {}
            return 200, self._list(kind, subscription, None), {}
        if len(rest) >= 5 and low[0] == "resourcegroups" and low[2:4] == ["providers", API.lower()]:
            group = rest[1]
            kind = _NOUNS.get(low[4])
            if kind is None:
                return 404, _error(404, "InvalidResourceType", path), {}
            if len(rest) == 5 and method == "GET":
                return 200, self._list(kind, subscription, group), {}
            name = rest[5]
            machine = self._machines.get((kind, subscription, group.lower(), name))
            if machine is None:
                return (
                    404,
                    _error(
                        404,
                        "ResourceNotFound",
                        f"The Resource '{API}/{_TYPES[kind]}/"
                        f"{name}' under resource group '{group}' was not found.",
                    ),
                    {},
                )
            tail = low[6:]
            if not tail and method == "GET":
                expand = query.get("$expand", "").lower() == "instanceview"
                return 200, self._machine_json(machine, expand), {}
            if tail == ["instanceview"] and method == "GET":
                return 200, self._instance_view(machine), {}
            if len(tail) == 1 and method == "POST" and tail[0] in _TRANSITIONS:
                return self._mutate(machine, tail[0])
        return 404, _error(404, "NotFound", f"no route for {method} {path}"), {}

    def _mutate(self, machine: _Machine, verb: str) -> tuple[int, Any, Mapping[str, str]]:
        self.mutations.append((verb, machine.name))
        action = (
            f"{API}/{_TYPES[machine.kind]}/{'deallocate' if verb != 'start' else 'start'}/action"
        )
        wanted = "start" if verb == "start" else "stop"
        if f"fail-{wanted}" in machine.faults:
            return (
                403,
                _error(
                    403,
                    "AuthorizationFailed",
                    "The client 'nightops' does not have "
                    f"authorization to perform action '{action}' over scope "
                    f"'{machine.arm_id}'.",
                ),
                {},
            )
        during, after = _TRANSITIONS[verb]
        lands = after
        error = None
        if verb == "start" and "fallback" in machine.faults:
            lands = "deallocated"
        if verb == "start" and "capacity" in machine.faults:
            lands = "deallocated"
            error = (
                "AllocationFailed",
                "Allocation failed. We do not have sufficient "
                "capacity for the requested VM size in this region.",
            )
        if machine.power != after:
            machine.power = during
        done_at = time.monotonic() + self.transition_seconds
        if "stuck" in machine.faults:
            done_at = float("inf")
        op = _Operation(uuid.uuid4().hex, machine, done_at, lands, error)
        if verb == "start" and "never-running" in machine.faults:
            op.lands = "starting"
        self._operations[op.id] = op
        base = (
            f"{self.url}/subscriptions/{machine.subscription}/providers/{API}/locations/"
            f"{machine.location}/operations/{op.id}?p=x&api-version=2024-07-01"
        )
        return 202, None, {"Azure-AsyncOperation": base, "Location": f"{base}&monitor=true"}

    def _operation(self, op_id: str, *, monitor: bool) -> tuple[int, Any, Mapping[str, str]]:
        op = self._operations.get(op_id)
        if op is None:
            return 404, _error(404, "NotFound", f"operation {op_id}"), {}
        if monitor:
            return (200, None, {}) if op.finished else (202, None, {"Location": ""})
        if not op.finished:
            return 200, {"name": op.id, "status": "InProgress"}, {}
        if op.error is not None:
            code, message = op.error
            return (
                200,
                {"name": op.id, "status": "Failed", "error": {"code": code, "message": message}},
                {},
            )
        return 200, {"name": op.id, "status": "Succeeded"}, {}

    def _settle(self) -> None:
        now = time.monotonic()
        for op in self._operations.values():
            if not op.finished and now >= op.done_at:
                op.finished = True
                op.machine.power = op.lands

    # -- JSON -----------------------------------------------------------------------------------

    def _statuses(self, power: str) -> list[dict[str, str]]:
        return [
            {
                "code": "ProvisioningState/succeeded",
                "level": "Info",
                "displayStatus": "Provisioning succeeded",
            },
            {"code": f"PowerState/{power}", "level": "Info", "displayStatus": f"VM {power}"},
        ]

    def _instance_view(self, machine: _Machine) -> dict[str, Any]:
        if machine.kind == "vm":
            return {"statuses": self._statuses(machine.power)}
        return {
            "virtualMachine": {
                "statusesSummary": [
                    {"code": f"PowerState/{machine.power}", "count": machine.capacity}
                ]
            },
            "statuses": self._statuses(machine.power)[:1],
        }

    def _machine_json(self, machine: _Machine, expand: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": machine.arm_id,
            "name": machine.name,
            "type": f"{API}/{_TYPES[machine.kind]}",
            "location": machine.location,
            "tags": machine.tags,
        }
        if machine.kind == "vm":
            data["properties"] = {
                "hardwareProfile": {"vmSize": machine.size},
                "provisioningState": "Succeeded",
            }
            if expand:
                data["properties"]["instanceView"] = self._instance_view(machine)
        else:
            data["sku"] = {"name": machine.size, "tier": "Standard", "capacity": machine.capacity}
            data["properties"] = {"provisioningState": "Succeeded"}
        return data

    def _list(self, kind: str, subscription: str, group: str | None) -> dict[str, Any]:
        return {
            "value": [
                self._machine_json(m)
                for m in self._machines.values()
                if m.kind == kind
                and m.subscription == subscription
                and (group is None or m.group.lower() == group.lower())
            ]
        }
