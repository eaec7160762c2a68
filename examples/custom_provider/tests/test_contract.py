"""The NightOps provider contract, run against the JSON-file provider."""

from __future__ import annotations

from contract import ProviderContract
from nightops_provider_example.testing import JsonFileHarness


class TestJsonFileContract(ProviderContract):
    def make_harness(self, *, real_time: bool) -> JsonFileHarness:
        return JsonFileHarness(real_time=real_time)
