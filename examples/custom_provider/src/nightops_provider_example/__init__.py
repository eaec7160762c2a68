"""A NightOps provider whose "cloud" is a JSON file of machines.

The file looks like this (``state`` is ``running``, ``stopped``, ``starting`` or
``stopping``; everything else is optional)::

    {"machines": {
        "web-1": {"state": "running", "kind": "vm", "region": "lab-a", "name": "web",
                  "tags": {"team": "qa"}},
        "db-1":  {"state": "stopped", "locked": ["stop"]}
    }}

Starting a machine sets its state to ``starting``, waits ``transition_seconds``, then sets
``running`` (stopping likewise). Two fields simulate a misbehaving cloud: ``locked``
(the verbs this provider is not allowed to perform on it: a permission error) and
``fallback`` (a start is accepted but the machine drops back to ``stopped``).

It implements :class:`nightops_core.ports.CloudProvider` as the contract in NightOps's
``tests/providers/contract.py`` asks: one result per resource in input order, acting
concurrently, no write when a machine is already in the wanted state, final state
verified, progress reported once per resource, errors as results (or
:class:`~nightops_core.errors.ProviderError` when the file itself is unusable).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from nightops_core.errors import ProviderError
from nightops_core.model import Resource, ResourceState, ResourceStatus, Selector
from nightops_core.ports import ActionResult, ErrorKind, ProgressCallback, ResultKind

__all__ = ["JsonFileProvider"]

_STATES = {s.value: s for s in ResourceState}


class JsonFileProvider:
    """Start and stop the machines of a JSON file.

    :param path: the JSON file (relative to the working directory).
    :param name: the provider name resources refer to (the entry point's name).
    :param transition_seconds: how long a start or stop takes.
    :param max_in_flight: machines acted on at the same time.
    """

    def __init__(
        self,
        *,
        path: str,
        name: str = "jsonfile",
        transition_seconds: float = 0.0,
        max_in_flight: int = 8,
    ) -> None:
        if not path:
            raise ValueError("path: the JSON file of machines is required")
        if transition_seconds < 0 or max_in_flight < 1:
            raise ValueError("transition_seconds must be >= 0 and max_in_flight >= 1")
        self.name = name
        self.path = Path(path)
        self.transition_seconds = transition_seconds
        self.max_in_flight = max_in_flight
        self._lock = threading.Lock()
        #: ``(verb, machine id)`` of every write this provider made: tests check it.
        self.calls: list[tuple[str, str]] = []

    # -- the CloudProvider protocol ------------------------------------------------------

    def describe(self, resources: Sequence[Resource]) -> Sequence[ResourceStatus]:
        if not resources:
            return []
        machines = self._read()
        return [self._status(r, machines.get(r.id)) for r in resources]

    def start(
        self, resources: Sequence[Resource], progress: ProgressCallback | None = None
    ) -> Sequence[ActionResult]:
        return self._act("start", resources, progress)

    def stop(
        self, resources: Sequence[Resource], progress: ProgressCallback | None = None
    ) -> Sequence[ActionResult]:
        return self._act("stop", resources, progress)

    def discover(self, selector: Selector) -> Sequence[Resource]:
        found = []
        for machine_id, entry in sorted(self._read().items()):
            resource = self._resource(machine_id, entry)
            if selector.regions and resource.region not in selector.regions:
                continue
            if selector.kinds and resource.kind not in selector.kinds:
                continue
            if not set(selector.tags) <= set(resource.tags):
                continue
            found.append(resource)
        return found

    # -- internals -------------------------------------------------------------------------

    def _resource(self, machine_id: str, entry: dict[str, Any]) -> Resource:
        return Resource(
            self.name,
            str(entry.get("kind", "vm")),
            machine_id,
            name=str(entry.get("name", "")),
            region=str(entry.get("region", "")),
            tags={str(k): str(v) for k, v in dict(entry.get("tags", {})).items()},
        )

    def _status(self, resource: Resource, entry: dict[str, Any] | None) -> ResourceStatus:
        if entry is None:
            return ResourceStatus(resource, ResourceState.MISSING, f"not in {self.path}")
        state = _STATES.get(str(entry.get("state")))
        if state is None:
            return ResourceStatus(
                resource, ResourceState.UNKNOWN, f"unknown state {entry.get('state')!r}"
            )
        return ResourceStatus(resource, state)

    def _act(
        self, verb: str, resources: Sequence[Resource], progress: ProgressCallback | None
    ) -> Sequence[ActionResult]:
        if not resources:
            return []
        self._read()  # an unusable file is a ProviderError for the whole call

        def one(resource: Resource) -> ActionResult:
            result = self._act_one(verb, resource)
            if progress is not None:
                progress(result)
            return result

        workers = min(self.max_in_flight, len(resources))
        with ThreadPoolExecutor(workers, thread_name_prefix=f"{self.name}-{verb}") as pool:
            return list(pool.map(one, resources))

    def _act_one(self, verb: str, resource: Resource) -> ActionResult:
        wanted = ResourceState.RUNNING if verb == "start" else ResourceState.STOPPED
        passing = ResourceState.STARTING if verb == "start" else ResourceState.STOPPING
        entry = self._read().get(resource.id)
        status = self._status(resource, entry)
        if entry is None:
            return ActionResult(
                resource,
                ResultKind.FAILED,
                ResourceState.MISSING,
                f"{resource.label} is not in {self.path}: correct its id or remove it",
                ErrorKind.NOT_FOUND,
            )
        if status.state is wanted:
            return ActionResult(resource, ResultKind.ALREADY, wanted)
        if verb in entry.get("locked", ()):
            return ActionResult(
                resource,
                ResultKind.FAILED,
                status.state,
                f"{resource.label} is locked against {verb} in {self.path}: remove "
                f"{verb!r} from its 'locked' list",
                ErrorKind.PERMISSION_DENIED,
            )
        with self._lock:
            self.calls.append((verb, resource.id))
        self._write_state(resource.id, passing)
        time.sleep(self.transition_seconds)
        lands = ResourceState.STOPPED if verb == "start" and entry.get("fallback") else wanted
        self._write_state(resource.id, lands)
        final = self._status(resource, self._read().get(resource.id)).state  # verify
        if final is not wanted:
            return ActionResult(
                resource,
                ResultKind.FAILED,
                final,
                f"{resource.label} was {verb}ed but is {final.value} again: "
                "look at the machine's own log",
                ErrorKind.WRONG_STATE,
            )
        return ActionResult(resource, ResultKind.DONE, wanted)

    def _read(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return self._load()

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ProviderError(
                f"{self.name}: {self.path} does not exist; create it or fix "
                f"[providers.{self.name}] path"
            ) from None
        except (OSError, ValueError) as exc:
            raise ProviderError(f"{self.name}: cannot read {self.path}: {exc}") from None
        machines = data.get("machines") if isinstance(data, dict) else None
        if not isinstance(machines, dict):
            raise ProviderError(f'{self.name}: {self.path} has no "machines" object')
        return machines

    def _write_state(self, machine_id: str, state: ResourceState) -> None:
        with self._lock:
            machines = self._load()
            if machine_id in machines:
                machines[machine_id]["state"] = state.value
                _atomic_write(self.path, {"machines": machines})


def _atomic_write(path: Path, data: object) -> None:
    """Replace ``path`` in one step, so a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(data, file, indent=2, sort_keys=True)
    os.replace(tmp, path)
