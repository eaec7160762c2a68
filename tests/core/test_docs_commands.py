"""docs/commands.md shows every command's usage line exactly as NightOps prints it."""

from __future__ import annotations

from pathlib import Path

import pytest

from nightops_core.grammar import COMMANDS, usage

COMMANDS_DOC = Path(__file__).resolve().parents[2] / "docs" / "commands.md"


@pytest.mark.parametrize("name", list(COMMANDS))
def test_usage_line_is_in_the_commands_doc(name: str) -> None:
    lines = COMMANDS_DOC.read_text(encoding="utf-8").splitlines()
    assert usage(name) in lines, f"docs/commands.md lacks the line {usage(name)!r}"


def test_every_command_has_a_section() -> None:
    text = COMMANDS_DOC.read_text(encoding="utf-8")
    for name in COMMANDS:
        assert f"\n## `{name}`\n" in text, f"docs/commands.md has no '## `{name}`' section"


@pytest.mark.parametrize("name", [name for name, spec in COMMANDS.items() if spec.options])
def test_every_option_is_explained_in_its_section(name: str) -> None:
    text = COMMANDS_DOC.read_text(encoding="utf-8")
    section = text.split(f"\n## `{name}`\n", 1)[1].split("\n## ", 1)[0]
    for option in COMMANDS[name].options:
        assert f"`{option.long}" in section, f"docs/commands.md, {name}: {option.long}"
