"""Value objects: targets, backoff policy, outcomes. No servers needed."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from mcp_client import BackoffPolicy, CallOutcome, ServerTarget


def test_stdio_target_normalises_mappings_and_is_hashable() -> None:
    a = ServerTarget(key="1", transport="stdio", command="srv", args=["--x"], env={"B": "2", "A": "1"})
    b = ServerTarget(key="1", transport="stdio", command="srv", args=("--x",), env=(("A", "1"), ("B", "2")))
    assert a == b and hash(a) == hash(b)
    assert a.args == ("--x",)
    assert a.env == (("A", "1"), ("B", "2"))
    assert a.env_dict == {"A": "1", "B": "2"}
    assert a != ServerTarget(key="1", transport="stdio", command="srv", args=("--x",), env={"A": "other"})
    assert len({a, b}) == 1


def test_http_target_headers() -> None:
    target = ServerTarget(key="k", transport="http", url="https://example.test/mcp", headers={"Authorization": "x"})
    assert target.headers_dict == {"Authorization": "x"}
    assert "Authorization" not in target.describe()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"key": "", "transport": "stdio", "command": "x"}, "key"),
        ({"key": "k", "transport": "websocket", "url": "http://h/"}, "transport must be one of"),
        ({"key": "k", "transport": "stdio"}, "needs a command"),
        ({"key": "k", "transport": "stdio", "command": "x", "url": "http://h/"}, "not a url"),
        ({"key": "k", "transport": "stdio", "command": "x", "headers": {"A": "b"}}, "headers only apply"),
        ({"key": "k", "transport": "http", "url": "ftp://h/x"}, "http(s)://"),
        ({"key": "k", "transport": "sse", "url": ""}, "http(s)://"),
        ({"key": "k", "transport": "http", "url": "http://h/", "command": "x"}, "only apply to stdio"),
        ({"key": "k", "transport": "stdio", "command": "x", "request_timeout": 0}, "request_timeout"),
        ({"key": "k", "transport": "stdio", "command": "x", "connect_timeout": -1}, "connect_timeout"),
        ({"key": "k", "transport": "stdio", "command": "x", "max_concurrency": 0}, "max_concurrency"),
        ({"key": "k", "transport": "stdio", "command": "x", "env": {"A": 1}}, "env must map str to str"),
        ({"key": "k", "transport": "stdio", "command": "x", "mode": "2025-11-25"}, "mode"),
    ],
)
def test_target_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ServerTarget(**kwargs)


def test_stdio_environment_adds_locale_but_not_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.setenv("SECRET_TOKEN", "do-not-leak")
    target = ServerTarget(key="k", transport="stdio", command="x", env={"LANG": "de_DE.UTF-8", "EXTRA": "1"})
    env = target.stdio_environment()
    assert env["LANG"] == "de_DE.UTF-8"  # the target's own value wins
    assert env["EXTRA"] == "1"
    assert "SECRET_TOKEN" not in env


def test_backoff_grows_with_jitter_and_cap() -> None:
    policy = BackoffPolicy(initial=0.5, factor=2.0, maximum=30.0, jitter=0.2)
    rng = random.Random(7)
    delays = [policy.delay(n, rng) for n in range(1, 12)]
    for n, delay in enumerate(delays, start=1):
        base = min(30.0, 0.5 * 2 ** (n - 1))
        assert base * 0.8 - 1e-9 <= delay <= min(30.0, base * 1.2) + 1e-9
    assert delays[-1] <= 30.0
    assert delays[3] > delays[0] * 4  # really exponential, not linear
    with pytest.raises(ValueError):
        BackoffPolicy(initial=0)
    with pytest.raises(ValueError):
        BackoffPolicy(jitter=1.5)


def test_call_outcome_to_dict() -> None:
    outcome = CallOutcome("k", "tools/call", "echo", datetime(2026, 1, 1, tzinfo=UTC), 1.5, True)
    assert outcome.to_dict()["started_at"] == "2026-01-01T00:00:00+00:00"
    assert outcome.error_kind is None
