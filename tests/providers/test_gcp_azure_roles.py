"""The least-privilege roles in docs/ list exactly the permissions the providers need.

A representative run (discover, describe, start, stop, suspend/resume, MIG resize, scale
sets) goes against the local stand-ins; every REST call they received is mapped to the IAM
permission / Azure RBAC action it needs, and that set must equal the role file's list —
nothing missing (NightOps would fail), nothing extra (not least privilege).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fake_arm import FakeArm
from fake_gce import FakeGce, Recorded
from test_azure import RG, SUB
from test_azure import make_provider as make_azure
from test_gcp import PROJECT, ZONE
from test_gcp import make_provider as make_gcp

from nightops_core.model import Selector

DOCS = Path(__file__).resolve().parents[2] / "docs"

#: Compute Engine REST calls (method, path after /compute/v1/projects/{project}/) -> permission.
GCP_PERMISSIONS: list[tuple[str, str, str]] = [
    ("GET", r"aggregated/instances", "compute.instances.list"),
    ("GET", r"zones/[^/]+/instances", "compute.instances.list"),
    ("GET", r"zones/[^/]+/instances/[^/]+", "compute.instances.get"),
    ("POST", r"zones/[^/]+/instances/[^/]+/start", "compute.instances.start"),
    ("POST", r"zones/[^/]+/instances/[^/]+/stop", "compute.instances.stop"),
    ("POST", r"zones/[^/]+/instances/[^/]+/suspend", "compute.instances.suspend"),
    ("POST", r"zones/[^/]+/instances/[^/]+/resume", "compute.instances.resume"),
    ("GET", r"zones/[^/]+/operations/[^/]+", "compute.zoneOperations.get"),
    ("POST", r"zones/[^/]+/operations/[^/]+/wait", "compute.zoneOperations.get"),
    ("GET", r"aggregated/instanceGroupManagers", "compute.instanceGroupManagers.list"),
    ("GET", r"zones/[^/]+/instanceGroupManagers/[^/]+", "compute.instanceGroupManagers.get"),
    (
        "POST",
        r"zones/[^/]+/instanceGroupManagers/[^/]+/resize",
        "compute.instanceGroupManagers.update",
    ),
]

_RG = r"resourceGroups/[^/]+/providers/Microsoft\.Compute"
#: ARM REST calls (method, path after /subscriptions/{sub}/) -> RBAC action.
AZURE_ACTIONS: list[tuple[str, str, str]] = [
    ("GET", r"providers/Microsoft\.Compute/virtualMachines", "virtualMachines/read"),
    ("GET", rf"{_RG}/virtualMachines", "virtualMachines/read"),
    ("GET", rf"{_RG}/virtualMachines/[^/]+", "virtualMachines/read"),
    ("GET", rf"{_RG}/virtualMachines/[^/]+/instanceView", "virtualMachines/instanceView/read"),
    ("POST", rf"{_RG}/virtualMachines/[^/]+/start", "virtualMachines/start/action"),
    ("POST", rf"{_RG}/virtualMachines/[^/]+/deallocate", "virtualMachines/deallocate/action"),
    ("POST", rf"{_RG}/virtualMachines/[^/]+/powerOff", "virtualMachines/powerOff/action"),
    (
        "GET",
        r"providers/Microsoft\.Compute/virtualMachineScaleSets",
        "virtualMachineScaleSets/read",
    ),
    ("GET", rf"{_RG}/virtualMachineScaleSets/[^/]+", "virtualMachineScaleSets/read"),
    (
        "GET",
        rf"{_RG}/virtualMachineScaleSets/[^/]+/instanceView",
        "virtualMachineScaleSets/instanceView/read",
    ),
    ("POST", rf"{_RG}/virtualMachineScaleSets/[^/]+/start", "virtualMachineScaleSets/start/action"),
    (
        "POST",
        rf"{_RG}/virtualMachineScaleSets/[^/]+/deallocate",
        "virtualMachineScaleSets/deallocate/action",
    ),
    (
        "GET",
        r"providers/Microsoft\.Compute/locations/[^/]+/operations/[^/]+",
        "locations/operations/read",
    ),
]


def _permission(table: list[tuple[str, str, str]], prefix: str, request: Recorded) -> str:
    path = re.sub(prefix, "", request.path)
    for method, pattern, permission in table:
        if request.method == method and re.fullmatch(pattern, path):
            return permission
    raise AssertionError(f"no permission known for {request.method} {request.path}")


def gcp_role_permissions() -> set[str]:
    """``includedPermissions`` of docs/gcp-role.yaml (a flat YAML list)."""
    lines = (DOCS / "gcp-role.yaml").read_text(encoding="utf-8").splitlines()
    start = lines.index("includedPermissions:") + 1
    found = set()
    for line in lines[start:]:
        match = re.fullmatch(r"\s+-\s+(\S+)", line)
        if match is None:
            break
        found.add(match.group(1))
    return found


def test_the_gcp_role_lists_exactly_the_permissions_the_calls_need() -> None:
    fake = FakeGce()
    fake.add_instance(PROJECT, ZONE, "vm-1", "RUNNING", labels={"team": "a"})
    fake.add_instance(PROJECT, ZONE, "vm-2", "RUNNING", labels={"team": "a", "suspend": "true"})
    fake.add_group(PROJECT, ZONE, "web", 2, labels={"team": "a", "restore_size": "2"})
    provider = make_gcp(fake)
    try:
        found = provider.discover(Selector("gcp", tags={"team": "a"}))
        assert {r.id for r in found} == {"vm-1", "vm-2", "web"}
        provider.describe(found)
        assert all(r.ok for r in provider.stop(found))
        assert all(r.ok for r in provider.start(found))  # resumes vm-2, resizes web back
    finally:
        provider.close()
        fake.close()
    observed = {
        _permission(GCP_PERMISSIONS, r"^/compute/v1/projects/[^/]+/", r) for r in fake.requests
    }
    assert observed == gcp_role_permissions()


def test_the_azure_role_lists_exactly_the_actions_the_calls_need() -> None:
    fake = FakeArm(transition_seconds=0.01)
    fake.add(SUB, RG, "vm-1", "deallocated", tags={"team": "a"})
    fake.add(SUB, RG, "vm-2", "stopped", tags={"team": "a"})
    fake.add(SUB, RG, "ss-1", "deallocated", kind="vmss", tags={"team": "a"})
    provider = make_azure(fake, polling_interval=0.005)
    try:
        found = provider.discover(Selector("azure", tags={"team": "a"}))
        assert len(found) == 3
        provider.describe(found)
        assert all(r.ok for r in provider.start(found))
        assert all(r.ok for r in provider.stop(found))
    finally:
        provider.close()
        fake.close()
    observed = {
        f"Microsoft.Compute/{_permission(AZURE_ACTIONS, r'^/subscriptions/[^/]+/', r)}"
        for r in fake.requests
    }
    role = json.loads((DOCS / "azure-role.json").read_text(encoding="utf-8"))
    assert observed == set(role["Actions"])
    assert not any("powerOff" in action for action in role["Actions"])  # never just power off
    assert role["IsCustom"] is True
    assert role["NotActions"] == role["DataActions"] == []


@pytest.mark.parametrize("module", ["nightops_providers.gcp", "nightops_providers.azure"])
def test_importing_and_constructing_starts_nothing(module: str) -> None:
    provider = "GcpProvider" if module.endswith("gcp") else "AzureProvider"
    code = (
        f"import threading, {module} as m\n"
        f"p = m.{provider}()\n"
        "assert not getattr(p, '_clients', None)\n"
        "assert threading.active_count() == 1\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
