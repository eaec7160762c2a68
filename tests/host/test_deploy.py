"""deploy/Dockerfile and deploy/nightops.service run real ``nightops`` commands.

Every ``nightops …`` command line in them is split into global options, subcommand and
the subcommand's options; each must appear in ``nightops --help`` / ``nightops
<subcommand> --help``, and the whole line must parse.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from nightops.cli import main

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
UNIT = ROOT / "deploy" / "nightops.service"
DOCS = ROOT / "docs" / "deployment.md"


def _logical_lines(text: str) -> list[str]:
    """Lines with backslash continuations joined and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line.strip() for line in joined.splitlines() if not line.lstrip().startswith("#")]


def dockerfile_commands() -> list[list[str]]:
    commands = []
    for line in _logical_lines(DOCKERFILE.read_text()):
        instruction, _, rest = line.partition(" ")
        if instruction in ("CMD", "ENTRYPOINT", "RUN") and "nightops" in rest:
            argv = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
            if argv and Path(argv[0]).name == "nightops":
                commands.append(argv)
    return commands


def unit_commands() -> list[list[str]]:
    commands = []
    for line in _logical_lines(UNIT.read_text()):
        key, _, value = line.partition("=")
        if key.startswith("Exec"):
            argv = shlex.split(value.lstrip("-@:+!"))
            assert Path(argv[0]).name == "nightops", line
            commands.append(argv)
    return commands


def help_text(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main([*args, "--help"])
    assert info.value.code == 0
    return capsys.readouterr().out


def _split(argv: list[str]) -> tuple[list[str], str, list[str]]:
    """(global options, subcommand, subcommand arguments) of ``nightops …``."""
    args = argv[1:]
    globals_: list[str] = []
    while args and args[0].startswith("-"):
        option = args.pop(0)
        globals_.append(option)
        if "=" not in option and option in ("--log-format", "--log-level"):
            globals_.append(args.pop(0))
    assert args, f"no subcommand in {argv}"
    return globals_, args[0], args[1:]


def test_the_files_run_nightops() -> None:
    docker = dockerfile_commands()
    assert [_split(c)[1] for c in docker] == ["serve"]
    assert [_split(c)[1] for c in unit_commands()] == ["check-config", "serve"]
    serve = docker[0]
    assert serve[serve.index("--config") + 1] == "/etc/nightops/nightops.toml"
    assert "--socket-mode" in serve


def test_the_dockerfile_installs_the_project_with_extras() -> None:
    runs = [x for x in _logical_lines(DOCKERFILE.read_text()) if x.startswith("RUN ")]
    assert any(re.search(r"pip install '?/src\[[a-z,]+\]'?", x) for x in runs), runs


@pytest.mark.parametrize(
    "argv",
    dockerfile_commands() + unit_commands(),
    ids=lambda argv: " ".join(argv[1:]),
)
def test_each_command_is_a_real_subcommand_with_real_options(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    globals_, command, rest = _split(argv)
    top = help_text([], capsys)
    assert re.search(rf"^\s+{re.escape(command)}\s", top, re.MULTILINE), (
        f"'nightops {command}' is not a subcommand of nightops --help; tell the lead"
    )
    for option in globals_:
        if option.startswith("--"):
            assert option.split("=")[0] in top
    sub = help_text([command], capsys)
    for option in rest:
        if option.startswith("-"):
            assert option.split("=")[0] in sub, f"{option} is not an option of {command}"


def test_the_deployment_page_shows_the_files_as_they_are() -> None:
    page = DOCS.read_text()
    for file in (DOCKERFILE, UNIT):
        body = file.read_text().strip()
        assert body in page, f"docs/deployment.md does not show {file.name} as it is"
