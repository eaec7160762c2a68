"""examples/custom_provider: a third-party provider package, found through its entry point.

Nothing is pip-installed: the example's ``src`` goes on ``sys.path`` and a ``*.dist-info``
directory whose ``entry_points.txt`` is generated from the example's own pyproject.toml
makes ``importlib.metadata`` see the distribution, exactly as an installed one.
"""

from __future__ import annotations

import io
import json
import re
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "providers"))
from contract import ProviderContract, ProviderHarness

from nightops.cli import main
from nightops.plugins import ENTRY_POINT_GROUP, available_providers, load_provider
from nightops_core.errors import ConfigError
from nightops_core.model import Resource, ResourceState
from nightops_core.ports import CloudProvider, ResultKind

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_provider"
PYPROJECT = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())
MODULES = ("nightops_provider_example", "nightops_provider_example.testing")


def _entry_points_txt() -> str:
    """The example's pyproject entry points, as an installer writes them."""
    lines = []
    for group, entries in PYPROJECT["project"]["entry-points"].items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {value}" for name, value in entries.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The example 'installed': its package importable and its entry point registered."""
    site = tmp_path / "site"
    dist_info = site / "nightops_provider_example-0.1.0.dist-info"
    dist_info.mkdir(parents=True)
    name, version = PYPROJECT["project"]["name"], PYPROJECT["project"]["version"]
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    )
    (dist_info / "entry_points.txt").write_text(_entry_points_txt())
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    monkeypatch.syspath_prepend(str(site))
    yield tmp_path
    for module in MODULES:
        sys.modules.pop(module, None)


def machines_file(where: Path, machines: dict[str, dict[str, object]]) -> Path:
    path = where / "machines.json"
    path.write_text(json.dumps({"machines": machines}))
    return path


def test_the_pyproject_registers_jsonfile_under_the_nightops_group() -> None:
    entries = PYPROJECT["project"]["entry-points"][ENTRY_POINT_GROUP]
    assert entries == {"jsonfile": "nightops_provider_example:JsonFileProvider"}


def test_listed_without_being_imported(installed: Path) -> None:
    info = available_providers()["jsonfile"]
    assert info.distribution == "nightops-provider-example"
    assert info.module == "nightops_provider_example"
    assert info.install_hint == (
        "pip install the package that provides it (nightops-provider-example)"
    )
    assert "nightops_provider_example" not in sys.modules


def test_load_provider_builds_it_with_its_options(installed: Path) -> None:
    path = machines_file(installed, {"web-1": {"state": "stopped", "region": "lab-a"}})
    provider = load_provider("jsonfile", {"path": str(path), "transition_seconds": 0})
    assert isinstance(provider, CloudProvider)
    assert type(provider).__name__ == "JsonFileProvider"
    web = Resource("jsonfile", "vm", "web-1", region="lab-a")
    assert provider.start([web])[0].kind is ResultKind.DONE
    assert json.loads(path.read_text())["machines"]["web-1"]["state"] == "running"


def test_an_unknown_option_names_the_accepted_ones(installed: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown option 'paht' \(did you mean 'path'\?\)"):
        load_provider("jsonfile", {"paht": "machines.json"})


class TestJsonFileContract(ProviderContract):
    """The whole shared provider contract, against the example."""

    @pytest.fixture(autouse=True)
    def _installed(self, installed: Path) -> None:
        pass

    def make_harness(self, *, real_time: bool) -> ProviderHarness:
        from nightops_provider_example.testing import JsonFileHarness

        return JsonFileHarness(real_time=real_time)


CONFIG = """\
[nightops]
state = "sqlite:///state.db"

[providers.jsonfile]
path = "{path}"

[[accounts]]
email = "alice@company.com"
role = "member"
collections = ["lab"]

[[channels]]
channel = "#lab"
collections = ["lab"]

[[collections]]
id = "lab"
name = "Lab Machines"
resources = [
  {{ provider = "jsonfile", kind = "vm", id = "web-1", name = "web", region = "lab-a" }},
  {{ provider = "jsonfile", kind = "vm", id = "db-1", name = "db", region = "lab-a" }},
]
"""


def write_config(where: Path, machines: Path) -> Path:
    config = where / "nightops.toml"
    config.write_text(CONFIG.format(path=machines.as_posix()))
    return config


def test_a_config_using_it_works_in_the_console(
    installed: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    running = {"state": "running", "region": "lab-a"}
    path = machines_file(installed, {"web-1": dict(running), "db-1": dict(running)})
    config = write_config(installed, path)
    assert main(["check-config", str(config)]) == 0
    assert "providers: jsonfile" in capsys.readouterr().out
    script = "/nightops status lab\n/nightops stop lab --force\n/nightops status lab\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(script))

    code = main(["console", "--config", str(config), "--user", "alice", "--channel", "#lab"])

    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    first, _, after = out.partition("✓ Lab Machines is now stopped")
    assert after, out
    assert re.search(r"web\s+running", first), out
    assert re.search(r"web\s+stopped", after), out
    machines = json.loads(path.read_text())["machines"]
    assert {m["state"] for m in machines.values()} == {"stopped"}


def test_doctor_reports_a_missing_machines_file(
    installed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(installed, installed / "nowhere.json")
    assert main(["doctor", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "✗ provider jsonfile: jsonfile: " in out
    assert "nowhere.json does not exist; create it or fix [providers.jsonfile] path" in out
    machines_file(installed, {"web-1": {"state": "stopped"}, "db-1": {"state": "running"}})
    config = write_config(installed, installed / "machines.json")
    assert main(["doctor", "--config", str(config)]) == 0
    assert "✓ provider jsonfile: loaded; web (web-1) is stopped" in capsys.readouterr().out


def test_the_example_readme_shows_the_entry_point() -> None:
    readme = (EXAMPLE / "README.md").read_text()
    assert '[project.entry-points."nightops.providers"]' in readme
    assert 'jsonfile = "nightops_provider_example:JsonFileProvider"' in readme
    assert ResourceState.RUNNING.value in readme
