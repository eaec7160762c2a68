"""Loading providers through the ``nightops.providers`` entry points.

The real ``sandbox`` entry point comes from the editable install of this project; the
misbehaving plugins come from a fake distribution (a ``*.dist-info`` directory) put on
``sys.path`` for the test, which ``importlib.metadata`` finds like any installed package.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from nightops.plugins import (
    ENTRY_POINT_GROUP,
    ProviderInfo,
    available_providers,
    load_provider,
    load_providers,
)
from nightops_core.errors import ConfigError, ProviderUnavailable
from nightops_core.model import Resource
from nightops_core.ports import CloudProvider, ResultKind
from nightops_providers import SandboxProvider

FAKE_MODULES = {
    # A first-party name whose SDK is not installed.
    "fake_aws_plugin": "raise ImportError(\"No module named 'boto3'\")\n",
    # A third-party plugin whose dependency is not installed.
    "fake_fancy_plugin": "import fake_fancy_sdk_that_does_not_exist\n",
    # A plugin that blows up on import; it leaves a marker to prove it was imported.
    "fake_broken_plugin": textwrap.dedent(
        """
        import pathlib
        pathlib.Path(__file__).with_name("broken-was-imported").touch()
        raise RuntimeError("plugin exploded")
        """
    ),
    "fake_not_a_provider": "def make():\n    return 42\n",
    "fake_crashing_factory": (
        "def make(**options):\n    raise OSError('cannot reach the fancy cloud')\n"
    ),
}

ENTRY_POINTS = f"""\
[{ENTRY_POINT_GROUP}]
aws = fake_aws_plugin:AwsProvider
fancy = fake_fancy_plugin:Provider
broken = fake_broken_plugin:Provider
notaprovider = fake_not_a_provider:make
crashes = fake_crashing_factory:make
demo = nightops_providers.sandbox:SandboxProvider
"""


@pytest.fixture
def fake_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fake installed distribution registering misbehaving providers."""
    dist_info = tmp_path / "nightops_fake_plugins-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: nightops-fake-plugins\nVersion: 1.0\n"
    )
    (dist_info / "entry_points.txt").write_text(ENTRY_POINTS)
    for module, source in FAKE_MODULES.items():
        (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for module in FAKE_MODULES:
        sys.modules.pop(module, None)


def broken_was_imported(where: Path) -> bool:
    return (where / "broken-was-imported").exists()


class TestListing:
    def test_the_sandbox_is_registered(self) -> None:
        info = available_providers()["sandbox"]
        assert info == ProviderInfo(
            "sandbox", "nightops_providers.sandbox:SandboxProvider", "nightops", None
        )
        assert info.module == "nightops_providers.sandbox"

    def test_listing_imports_no_plugin(self, fake_plugins: Path) -> None:
        providers = available_providers()
        assert {"aws", "fancy", "broken", "sandbox"} <= set(providers)
        assert providers["aws"].extra == "aws"
        assert providers["aws"].install_hint == "pip install 'nightops[aws]'"
        assert providers["broken"].distribution == "nightops-fake-plugins"
        assert not broken_was_imported(fake_plugins)
        assert not set(FAKE_MODULES) & set(sys.modules)

    def test_importing_the_host_module_loads_no_provider(self) -> None:
        code = (
            "import sys, nightops.plugins\n"
            "assert 'nightops_providers' not in sys.modules, 'providers imported eagerly'\n"
        )
        subprocess.run([sys.executable, "-c", code], check=True)


class TestLoadProvider:
    def test_loads_the_sandbox_with_its_options(self) -> None:
        provider = load_provider("sandbox", {"transition_seconds": 0, "name": "demo"})
        assert isinstance(provider, SandboxProvider)
        assert isinstance(provider, CloudProvider)
        assert provider.name == "demo"
        resource = Resource("demo", "vm", "i-1", tags={"sandbox:state": "stopped"})
        assert provider.start([resource])[0].kind is ResultKind.DONE

    def test_an_unknown_name_lists_the_available_ones(self) -> None:
        with pytest.raises(
            ProviderUnavailable, match=r"unknown provider 'nosuch'; available: .*sandbox"
        ):
            load_provider("nosuch", {})

    def test_an_unknown_name_suggests_the_closest(self) -> None:
        with pytest.raises(ProviderUnavailable, match=r"'sandbx' \(did you mean 'sandbox'\?\)"):
            load_provider("sandbx", {})

    def test_an_unknown_option_is_a_config_error_listing_the_allowed_ones(self) -> None:
        with pytest.raises(ConfigError) as caught:
            load_provider("sandbox", {"colour": "red"})
        message = caught.value.message
        assert message.startswith("providers.sandbox: unknown option 'colour'; allowed: name, ")
        assert "transition_seconds" in message
        assert "max_in_flight" in message

    def test_a_misspelt_option_gets_a_suggestion(self) -> None:
        with pytest.raises(ConfigError, match=r"'timeout' \(did you mean 'timeout_seconds'\?\)"):
            load_provider("sandbox", {"timeout": 3})

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"max_in_flight": 0}, "max_in_flight must be a whole number >= 1, got 0"),
            (
                {"transition_seconds": "fast"},
                "transition_seconds must be a number >= 0, got 'fast'",
            ),
        ],
    )
    def test_a_bad_option_value_is_a_config_error(
        self, options: dict[str, object], message: str
    ) -> None:
        with pytest.raises(ConfigError) as caught:
            load_provider("sandbox", options)
        assert caught.value.message == f"providers.sandbox: {message}"

    def test_options_must_be_a_table(self) -> None:
        with pytest.raises(ConfigError, match=r"providers\.sandbox: expected a table"):
            load_provider("sandbox", "fast")  # type: ignore[arg-type]

    def test_a_first_party_provider_without_its_sdk_says_which_extra(
        self, fake_plugins: Path
    ) -> None:
        with pytest.raises(ProviderUnavailable) as caught:
            load_provider("aws", {})
        assert caught.value.message.startswith(
            "provider 'aws' needs extra packages: pip install 'nightops[aws]'"
        )
        assert "boto3" in caught.value.message

    def test_a_third_party_provider_without_its_dependency(self, fake_plugins: Path) -> None:
        with pytest.raises(
            ProviderUnavailable,
            match=r"provider 'fancy' needs extra packages: pip install the package that "
            r"provides it \(nightops-fake-plugins\)",
        ):
            load_provider("fancy", {})

    def test_a_broken_plugin_is_logged_and_unavailable(
        self, fake_plugins: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        with (
            caplog.at_level(logging.WARNING, logger="nightops.plugins"),
            pytest.raises(ProviderUnavailable, match=r"provider 'broken' .*RuntimeError"),
        ):
            load_provider("broken", {})
        (record,) = [r for r in caplog.records if "'broken'" in r.getMessage()]
        assert record.levelno == logging.WARNING
        assert record.name == "nightops.plugins"
        assert "RuntimeError: plugin exploded" in record.getMessage()
        assert record.exc_info is None  # type and message only: no traceback, no locals

    def test_a_plugin_that_returns_no_provider(self, fake_plugins: Path) -> None:
        with pytest.raises(ProviderUnavailable, match=r"returned int, not a CloudProvider"):
            load_provider("notaprovider", {})

    def test_a_plugin_whose_factory_fails(
        self, fake_plugins: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        with (
            caplog.at_level(logging.WARNING, logger="nightops.plugins"),
            pytest.raises(ProviderUnavailable, match=r"'crashes' .*failed to start: OSError"),
        ):
            load_provider("crashes", {})
        assert "cannot reach the fancy cloud" in caplog.text

    def test_a_third_party_plugin_loads(self, fake_plugins: Path) -> None:
        provider = load_provider("demo", {"name": "demo"})
        assert provider.name == "demo"


class TestLoadProviders:
    def test_loads_only_what_is_needed(self, fake_plugins: Path) -> None:
        config = {"sandbox": {"transition_seconds": 0}, "broken": {}}
        providers = load_providers(config, ["sandbox", "demo", "sandbox"])
        assert list(providers) == ["sandbox", "demo"]
        assert isinstance(providers["demo"], SandboxProvider)  # no table: default options
        assert not broken_was_imported(fake_plugins)

    def test_a_needed_broken_plugin_is_an_error(self, fake_plugins: Path) -> None:
        with pytest.raises(ProviderUnavailable, match="'broken'"):
            load_providers({}, ["sandbox", "broken"])
        assert broken_was_imported(fake_plugins)

    def test_a_table_for_an_unregistered_provider_is_a_config_error(self) -> None:
        with pytest.raises(ConfigError, match=r"^providers\.sandbx: unknown provider 'sandbx'"):
            load_providers({"sandbx": {}}, [])

    def test_bad_options_name_the_table(self) -> None:
        with pytest.raises(ConfigError, match=r"^providers\.sandbox: unknown option 'x'"):
            load_providers({"sandbox": {"x": 1}}, ["sandbox"])
