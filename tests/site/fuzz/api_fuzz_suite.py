"""Schemathesis against our own OpenAPI schema: every operation, as an admin and as an operator, generated inputs
(valid and not), and no server error allowed.

A gateway answer (502/503/504) is allowed only where the schema documents it (operations that talk to MCP servers);
500 never. Bounded in time: a fixed number of examples per operation. Safe to run anywhere: generated stdio commands
are refused by the command allow-list set here, and generated URLs by the outbound address policy (loopback only),
so no command runs and no traffic leaves 127.0.0.0/8.

Run by tests/site/test_api_fuzz.py in a pytest of its own (a separate process): hypothesis parses source with
`ast`, and CPython 3.11.7's AST constructor fails with "recursion depth mismatch" once earlier tests in the same
process have left its counter skewed (fixed in 3.11.8), which made this fuzz fail for reasons of its neighbours.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.core.cache import cache
from hypothesis import HealthCheck, given, settings
from rest_framework.authtoken.models import Token
from schemathesis.generation.modes import GenerationMode

from orchestrator_site.wsgi import application
from registry.services import server_create

EXAMPLES_PER_OPERATION = 25
GATEWAY = {502, 503, 504}
# POST and DELETE here replace and revoke the caller's own token: each persona gets its key back after every call, or
# every operation fuzzed after them would only be answered 401.
OWN_TOKEN_PATH = "/api/auth/my-token/"


@pytest.fixture
def fuzzing(settings, transactional_db):
    settings.MCP_STDIO_COMMAND_ALLOWLIST = ["/nonexistent/fuzz-only-command"]
    settings.MCP_CONNECT_TIMEOUT_SECONDS = 1.0
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_CLASSES": []}
    cache.clear()
    # Something to find by name: generated names rarely hit, so the documented examples do.
    server_create(name="known", transport="http", url="http://127.0.0.1:9/mcp")
    yield


def fuzz_everything(tokens: dict[str, str]) -> list[str]:
    schema = schemathesis.openapi.from_wsgi(
        "/api/schema/?format=json", application, headers=auth(next(iter(tokens.values())))
    )
    problems: list[str] = []
    # FUZZ_PART=k/n: every n-th operation from the k-th (the parts run in parallel test processes; together, all).
    part, parts = (int(number) for number in os.environ.get("FUZZ_PART", "1/1").split("/"))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, "the schema lists no operations"
    for operation in operations[part - 1 :: parts]:
        problems.extend(fuzz_operation(operation, tokens))
    return problems


def fuzz_operation(operation, tokens: dict[str, str]) -> list[str]:
    """Each generated case is sent once per persona: the same inputs as running the fuzz per persona (generation is
    derandomized), generated once, which is most of the fuzz's cost."""
    documented = {int(code) for code in operation.definition.raw.get("responses", {}) if code.isdigit()}
    problems: list[str] = []
    statuses: list[int] = []
    strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE)

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )
    @given(case=strategy)
    def run(case) -> None:
        for persona, token in tokens.items():
            response = case.call(headers=auth(token))
            status = response.status_code
            statuses.append(status)
            if operation.path == OWN_TOKEN_PATH:
                keep_token(persona, token)
            if status >= 500 and not (status in GATEWAY and status in documented):
                where = f"{case.path_parameters} {case.query} {case.body!r:.300}"
                problems.append(f"{operation.label} as {persona}: {status} for {where}")

    run()
    minimum = len(tokens) * EXAMPLES_PER_OPERATION // 2
    assert len(statuses) >= minimum, f"{operation.label}: only {len(statuses)} requests made"
    assert set(statuses) != {401}, f"{operation.label}: every request refused 401 (a persona's token was lost)"
    return problems


def keep_token(username: str, key: str) -> None:
    Token.objects.filter(user__username=username).exclude(key=key).delete()
    Token.objects.get_or_create(key=key, defaults={"user": User.objects.get(username=username)})


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Token {token}"}


@pytest.mark.timeout(600)
def test_no_generated_request_makes_a_server_error(admin_user, operator_user, fuzzing):
    tokens = {user.username: Token.objects.create(user=user).key for user in (admin_user, operator_user)}
    problems = fuzz_everything(tokens)
    assert problems == [], "\n".join(problems[:20])
