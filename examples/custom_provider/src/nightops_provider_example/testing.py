"""Test support shipped with the provider: a harness for NightOps's provider contract.

The harness owns a temporary JSON file (the "cloud"), builds a :class:`JsonFileProvider`
on it, and changes the file behind the provider's back to create machines, inject faults
and simulate drift. Use it with ``tests/providers/contract.py`` from NightOps::

    from contract import ProviderContract
    from nightops_provider_example.testing import JsonFileHarness

    class TestJsonFileContract(ProviderContract):
        def make_harness(self, *, real_time: bool) -> JsonFileHarness:
            return JsonFileHarness(real_time=real_time)
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nightops_core.model import Resource, ResourceState
from nightops_provider_example import JsonFileProvider

__all__ = ["JsonFileHarness"]


class JsonFileHarness:
    """A :class:`JsonFileProvider` on a fresh file, plus control over that file."""

    regions = ("lab-a", "lab-b")

    def __init__(self, *, real_time: bool = False) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="nightops-jsonfile-"))
        self.path = self._dir / "machines.json"
        self._write({})
        self.transition_seconds = 0.1 if real_time else 0.0
        self.provider = JsonFileProvider(
            path=str(self.path), transition_seconds=self.transition_seconds, max_in_flight=16
        )
        self._count = 0

    def _read(self) -> dict[str, dict[str, Any]]:
        machines: dict[str, dict[str, Any]] = json.loads(self.path.read_text())["machines"]
        return machines

    def _write(self, machines: Mapping[str, Any]) -> None:
        self.path.write_text(json.dumps({"machines": machines}, indent=2))

    def _edit(self, machine_id: str, **changes: Any) -> None:
        machines = self._read()
        machines[machine_id].update(changes)
        self._write(machines)

    def create(
        self,
        state: ResourceState,
        *,
        region: str | None = None,
        tags: Mapping[str, str] | None = None,
        name: str = "",
    ) -> Resource:
        self._count += 1
        machine_id = f"m-{self._count:04d}"
        machines = self._read()
        machines[machine_id] = {
            "state": state.value,
            "kind": "vm",
            "region": region or self.regions[0],
            "name": name,
            "tags": dict(tags or {}),
        }
        self._write(machines)
        return Resource(
            self.provider.name,
            "vm",
            machine_id,
            name=name,
            region=region or self.regions[0],
            tags=tags or {},
        )

    def inject(self, resource: Resource, fault: str) -> None:
        machines = self._read()
        entry = machines[resource.id]
        if fault in ("fail-start", "fail-stop"):
            entry.setdefault("locked", []).append(fault.removeprefix("fail-"))
        elif fault == "fallback":
            entry["fallback"] = True
        elif fault == "missing":
            del machines[resource.id]
        else:
            raise ValueError(f"the JSON file cannot simulate {fault!r}")
        self._write(machines)

    def set_state(self, resource: Resource, state: ResourceState) -> None:
        self._edit(resource.id, state=state.value)

    def state_of(self, resource: Resource) -> ResourceState:
        entry = self._read().get(resource.id)
        return ResourceState.MISSING if entry is None else ResourceState(entry["state"])

    def mutating_calls(self) -> list[tuple[str, str]]:
        return list(self.provider.calls)

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)
