"""Logging: text and JSON lines, and secrets that never reach a handler."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nightops.config import parse_config
from nightops.logs import (
    JsonFormatter,
    RedactingFilter,
    config_secrets,
    configure_logging,
    redact,
    redact_config_secrets,
    setup_cli_logging,
)

BOT = "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx"
APP = "xapp-1-A0123456789-1234567890123-abcdef0123456789"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """A configured logging setup writing into a buffer; removed afterwards."""
    buffer = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = configure_logging("text", "DEBUG", stream=buffer, environ={})
    yield buffer
    root.removeHandler(handler)
    root.setLevel(level)


def log_lines(buffer: io.StringIO) -> list[str]:
    return buffer.getvalue().splitlines()


class TestRedact:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            (f"token {BOT} rejected", "token *** rejected"),
            (f"app token={APP}", "app token=***"),
            ("xoxp-1-2-3-abc and xoxe.xoxp-1-abc", "*** and xoxe.***"),
            (
                "cannot reach postgresql://nightops:s3cr3t-pw@db:5432/nightops",
                "cannot reach postgresql://nightops:***@db:5432/nightops",
            ),
            ("Authorization: Bearer abcdefgh12345678", "Authorization: Bearer ***"),
            ("client_secret=abc123def&code=x", "client_secret=***&code=x"),
            ("password: hunter2hunter2", "password: ***"),
            (
                "nothing secret here: i-0abc123, #dev-team",
                "nothing secret here: i-0abc123, #dev-team",
            ),
        ],
    )
    def test_patterns(self, text: str, expected: str) -> None:
        assert redact(text) == expected

    def test_known_values_longest_first(self) -> None:
        assert redact("a=topsecret b=topsecret-2", ["topsecret", "topsecret-2"]) == "a=*** b=***"


class TestFilter:
    def test_message_and_arguments(self, stream: io.StringIO) -> None:
        logging.getLogger("nightops.slack").warning("auth failed for %s at %s", BOT, "slack.com")
        (line,) = log_lines(stream)
        assert line.endswith("WARNING nightops.slack: auth failed for *** at slack.com")
        assert "xoxb" not in stream.getvalue()

    def test_values_of_secret_environment_variables(self) -> None:
        env = {"SLACK_SIGNING_SECRET": "8f742231b10e8888abcd99yyyzzz85a5", "HOME": "/root/home"}
        f = RedactingFilter(environ=env)
        assert f.redact("sig 8f742231b10e8888abcd99yyyzzz85a5 home /root/home") == (
            "sig *** home /root/home"
        )

    def test_config_secrets(self, stream: io.StringIO) -> None:
        env = {"BOT": BOT, "SIGN": "signing-secret-value", "PW": "db-password-1"}
        config = parse_config(
            '[nightops]\nstate = "postgresql://nightops:${PW}@db/nightops"\n'
            '[slack]\nbot_token = "${BOT}"\nsigning_secret = "${SIGN}"\n'
            '[providers.sandbox]\napi_token = "provider-token-42"\n',
            env=env,
        )
        assert config_secrets(config) == {
            BOT,
            "signing-secret-value",
            "db-password-1",
            "provider-token-42",
        }
        redact_config_secrets(config)
        logging.getLogger("x").error("sig=%s pw %s p %s", *sorted(config_secrets(config))[:3])
        assert "signing-secret-value" not in stream.getvalue()
        assert "db-password-1" not in stream.getvalue()
        assert "provider-token-42" not in stream.getvalue()

    def test_tracebacks_stack_and_extra_fields(self, stream: io.StringIO) -> None:
        log = logging.getLogger("nightops.test")
        try:
            raise RuntimeError(f"slack said invalid_auth for {BOT}")
        except RuntimeError:
            log.exception("call failed", extra={"token": APP, "channel": "#ops"})
        log.info("here", stack_info=True, extra={"url": "https://u:pw123456@host/x"})
        text = stream.getvalue()
        assert "RuntimeError: slack said invalid_auth for ***" in text
        assert BOT not in text
        assert APP not in text
        assert "pw123456" not in text

    def test_other_handlers_keep_working(
        self, stream: io.StringIO, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.INFO):
            logging.getLogger("nightops").info("token %s", BOT)
        assert len(caplog.records) == 1  # pytest's handler still gets the record
        assert BOT not in stream.getvalue()

    def test_a_bad_format_string_is_still_logged(self, stream: io.StringIO) -> None:
        logging.getLogger("x").warning("%d items for %s", "many")
        assert "%d items for %s" in stream.getvalue()


class TestJson:
    def test_one_object_per_line(self) -> None:
        buffer = io.StringIO()
        root = logging.getLogger()
        level = root.level
        handler = configure_logging("json", "INFO", stream=buffer, environ={})
        try:
            logging.getLogger("nightops.scheduler").info(
                "started %s", "staging-api", extra={"collection": "staging-api", "n": 3}
            )
            logging.getLogger("nightops.scheduler").debug("not shown")
            try:
                1 / 0  # noqa: B018
            except ZeroDivisionError:
                logging.getLogger("nightops").exception("boom %s", BOT)
        finally:
            root.removeHandler(handler)
            root.setLevel(level)
        first, second = (json.loads(line) for line in buffer.getvalue().splitlines())
        assert first["level"] == "info"
        assert first["logger"] == "nightops.scheduler"
        assert first["message"] == "started staging-api"
        assert first["collection"] == "staging-api"
        assert first["n"] == 3
        assert first["time"].endswith("+00:00")
        assert second["message"] == "boom ***"
        assert "ZeroDivisionError" in second["exception"]

    def test_unserialisable_extras_become_text(self) -> None:
        record = logging.LogRecord("n", logging.INFO, "f", 1, "m", None, None)
        record.path = Path("/tmp/x")  # type: ignore[attr-defined]
        assert json.loads(JsonFormatter().format(record))["path"] == "/tmp/x"


class TestConfigure:
    def test_replaces_only_its_own_handler(self) -> None:
        root = logging.getLogger()
        level, before = root.level, list(root.handlers)
        first = configure_logging("text", "INFO", stream=io.StringIO())
        second = configure_logging("json", "WARNING", stream=io.StringIO())
        try:
            assert first not in root.handlers
            assert root.handlers == [*before, second]
            assert root.level == logging.WARNING
        finally:
            root.removeHandler(second)
            root.setLevel(level)

    def test_bad_values(self) -> None:
        with pytest.raises(ValueError, match="unknown log format 'xml'"):
            configure_logging("xml")
        with pytest.raises(ValueError, match="unknown log level 'loud'"):
            configure_logging("text", "loud")

    def test_cli_setup_defaults_and_undo(self) -> None:
        root = logging.getLogger()
        level = root.level
        undo = setup_cli_logging("text", None, "serve")
        assert root.level == logging.INFO
        undo()
        undo = setup_cli_logging("text", None, "demo")
        assert root.level == logging.WARNING
        undo()
        undo = setup_cli_logging("json", "debug", "demo")
        assert root.level == logging.DEBUG
        undo()
        assert root.level == level


NIGHTOPS = (sys.executable, "-m", "nightops.cli")
# A schedule whose last boundary is always within the catch-up grace: the scheduler acts
# (and logs the notification) on its first tick.
CONFIG = """\
[nightops]
state = "sqlite:///state.db"
catch_up_grace = "1d"
[providers.sandbox]
transition_seconds = 0
[schedules.always]
on = ["daily 00:00-23:59"]
[[collections]]
id = "dev"
schedule = "always"
[[collections.resources]]
provider = "sandbox"
kind = "ec2"
id = "i-1"
tags = { "sandbox:state" = "stopped" }
"""


def test_the_cli_logs_json_lines(tmp_path: Path) -> None:
    config = tmp_path / "nightops.toml"
    config.write_text(CONFIG)
    args = ["--log-format", "json", "--log-level", "DEBUG", "scheduler", "--once", "-c", config]
    result = subprocess.run(
        [*NIGHTOPS, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines, "debug logging produced nothing"
    for line in lines:
        record = json.loads(line)
        assert {"time", "level", "logger", "message"} <= set(record)


def test_the_cli_rejects_an_unknown_format() -> None:
    result = subprocess.run(
        [*NIGHTOPS, "--log-format", "xml", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "invalid choice: 'xml'" in result.stderr
