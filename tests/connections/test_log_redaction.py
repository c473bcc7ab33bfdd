"""Secrets stay out of every log line, the SDK's included; redaction takes whole values; a missing cwd is named.

The stdio child here is `tests/mcp_servers/leaky.py`, a real MCP server that prints the secret it was given to its
stdout before serving (lines the SDK's client logs with their content: unparseable ones, a notification that does
not validate) and to its stderr.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mcp_client import ConnectionHub, ServerTarget, ServerUnavailable
from mcp_client.redaction import REDACTED, Redactor

from .helpers import MARKER_ENV, PYTHON, await_until, script

# One value shorter than 16 characters (hidden where it stands as a whole token), one longer (hidden anywhere).
SECRETS = ["s3cr3t-Zq81vX3m", "sk-live-0f9e8d7c6b5a4f3e2d1c"]


def _leaky(marker: str, secret: str, **env: str) -> ServerTarget:
    return ServerTarget(
        key="leaky",
        transport="stdio",
        command=PYTHON,
        args=(script("leaky"), "--marker", marker),
        env={MARKER_ENV: marker, "LEAKY_SECRET": secret, **env},
    )


def _capture_every_logger(caplog: pytest.LogCaptureFixture) -> None:
    """DEBUG for the root and for every logger that set a level of its own (settings.LOGGING quiets `mcp`, the
    connection tests quiet `mcp.client.stdio`, the probe command others): every record any logger makes is captured.
    caplog restores the levels after the test."""
    caplog.set_level(logging.DEBUG)
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET:
            caplog.set_level(logging.DEBUG, logger=name)


def _rendered(caplog: pytest.LogCaptureFixture, record: logging.LogRecord) -> str:
    """Everything a handler could write of a record: the formatted line (message, traceback, stack), the template and
    the args."""
    return "\n".join([caplog.handler.format(record), str(record.msg), repr(record.args)])


def _relayed(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "mcp_client.stderr" and text in record.getMessage()]


@pytest.mark.parametrize("secret", SECRETS)
async def test_a_secret_a_stdio_child_prints_reaches_no_log_record(
    hub: ConnectionHub, marker: str, caplog: pytest.LogCaptureFixture, secret: str
) -> None:
    _capture_every_logger(caplog)
    connection = await hub.ensure(_leaky(marker, secret))
    await connection.wait_connected(20)
    answer = await hub.call_tool("leaky", "whisper", {})
    assert answer.result.text == "nothing to see"
    assert await await_until(lambda: _relayed(caplog, "my secret is") and _relayed(caplog, "whispering"), 10)

    # The records exist: the SDK's, with what the child printed in their tracebacks (its session logger is named
    # "client"; its stdio reader's "mcp.client.stdio"), and ours from its stderr.
    sdk = [record for record in caplog.records if record.name == "client" or record.name.startswith("mcp.")]
    invalid_notification = [record for record in sdk if "Failed to validate notification" in record.getMessage()]
    assert invalid_notification and all(REDACTED in _rendered(caplog, record) for record in invalid_notification)
    assert _relayed(caplog, f"my secret is {REDACTED}") and _relayed(caplog, f"whispering {REDACTED}")
    # ...and not one record of any logger holds the secret, however it is rendered.
    leaking = [record.name for record in caplog.records if secret in _rendered(caplog, record)]
    assert leaking == []
    assert secret not in caplog.text


def test_a_short_secret_is_hidden_on_its_own_not_inside_words(caplog: pytest.LogCaptureFixture) -> None:
    redact = Redactor(["abcd", "x1", "Bearer tok-9a8b7c"])
    # Inside words: left alone.
    assert redact("MCP server 'hostile-abcdef': reconnecting") == "MCP server 'hostile-abcdef': reconnecting"
    assert redact("MCP server 'hostile-x1' connected") == "MCP server 'hostile-x1' connected"
    assert redact("WWW-Authenticate: Bearer realm=mcp") == "WWW-Authenticate: Bearer realm=mcp"
    # Whole: hidden (a value under four characters only when it is all the text, like a stderr line).
    assert redact("key=abcd; next") == f"key={REDACTED}; next"
    assert redact("'abcd'") == f"'{REDACTED}'"
    assert redact(" x1 ") == REDACTED
    assert redact("Authorization: Bearer tok-9a8b7c") == f"Authorization: {REDACTED}"
    assert redact("token tok-9a8b7c") == f"token {REDACTED}"

    # The log filter follows the same rule.
    _capture_every_logger(caplog)
    logging.getLogger("httpx2").warning("MCP server %r: key=%s", "hostile-abcdef", "abcd")
    (record,) = [record for record in caplog.records if "hostile-abcdef" in record.getMessage()]
    assert record.getMessage() == f"MCP server 'hostile-abcdef': key={REDACTED}"
    assert "abcd'" not in repr(record.args)


async def test_a_missing_working_directory_is_reported_as_such(hub: ConnectionHub, marker: str, tmp_path: Path) -> None:
    a_file = tmp_path / "not-a-directory"
    a_file.write_text("")
    expected = {
        "gone": (tmp_path / "gone", PYTHON, f"working directory not found: {tmp_path / 'gone'}"),
        "file": (a_file, PYTHON, f"working directory is not a directory: {a_file}"),
        # An existing directory and a command that is not there: the command is still the one named.
        "no-command": (tmp_path, str(tmp_path / "no-such-command"), f"command not found: {tmp_path}/no-such-command"),
    }
    for key, (cwd, command, error) in expected.items():
        target = ServerTarget(
            key=key,
            transport="stdio",
            command=command,
            args=(script("well_behaved"), "--marker", marker),
            env={MARKER_ENV: marker},
            cwd=str(cwd),
        )
        connection = await hub.ensure(target)
        with pytest.raises(ServerUnavailable):
            await connection.wait_connected(10, fail_in_backoff=True)
        status = connection.status()
        assert status.last_error == error
        assert status.needs_attention  # a person must fix it: retried slowly


async def test_the_rest_of_an_overlong_stderr_line_is_not_logged_as_lines_of_its_own(
    hub: ConnectionHub, marker: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A piece cut from the middle of a line could start in the middle of a secret, where no redaction knows it: of a
    # line longer than the relay's buffer, its beginning is logged (cut to the line limit) and the rest skipped.
    _capture_every_logger(caplog)
    connection = await hub.ensure(_leaky(marker, SECRETS[0], LEAKY_LONG_LINE=str(300_000)))
    await connection.wait_connected(20)
    assert await await_until(lambda: _relayed(caplog, "after the long line"), 10)
    pieces = _relayed(caplog, "xxxxxxxx")
    assert len(pieces) == 1
    assert pieces[0].getMessage().startswith("MCP server 'leaky' stderr: start-of-long-line xxxx")
    assert len(pieces[0].getMessage()) < 600
