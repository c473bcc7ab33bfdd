"""Shared fixtures: personas (admin, operator, viewer, outsider) and API clients logged in as each."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from rest_framework.test import APIClient

from registry.permissions import OPERATOR_GROUP, VIEWER_GROUP

PASSWORD = "correct-horse-battery"


def _user(username: str, *, group: str | None = None, staff: bool = False) -> User:
    user = User.objects.create_user(username=username, password=PASSWORD, is_staff=staff, is_superuser=staff)
    if group:
        user.groups.add(Group.objects.get_or_create(name=group)[0])
    return user


@pytest.fixture
def admin_user(db) -> User:
    return _user("alice-admin", staff=True)


@pytest.fixture
def operator_user(db) -> User:
    return _user("oscar-operator", group=OPERATOR_GROUP)


@pytest.fixture
def viewer_user(db) -> User:
    return _user("vera-viewer", group=VIEWER_GROUP)


@pytest.fixture
def outsider_user(db) -> User:
    return _user("otto-outsider")


def _api_client(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user=user)
    return client


@pytest.fixture
def anonymous_api() -> APIClient:
    return _api_client(None)


@pytest.fixture
def admin_api(admin_user: User) -> APIClient:
    return _api_client(admin_user)


@pytest.fixture
def operator_api(operator_user: User) -> APIClient:
    return _api_client(operator_user)


@pytest.fixture
def viewer_api(viewer_user: User) -> APIClient:
    return _api_client(viewer_user)


@pytest.fixture
def outsider_api(outsider_user: User) -> APIClient:
    return _api_client(outsider_user)


@pytest.fixture(autouse=True)
def _retire_hosted_exchanges():
    """The exchanges a test made on the exchange host (tests/exchanges.py) stop after it. Defined before
    _close_live_sessions so it is torn down after it: the sessions are closed before their servers go."""
    yield
    from tests.exchanges import EXCHANGE_HOST

    EXCHANGE_HOST.retire_made()


@pytest.fixture(autouse=True)
def _close_live_sessions():
    """Every MCP session a test opened through the process-wide runtime is closed (and its child reaped) after it."""
    yield
    from mcp_client import shutdown_runtime

    shutdown_runtime()


@pytest.fixture(autouse=True)
def _forget_settled_health_sums():
    """The health figures remember settled hour sums per process; each test writes its own history."""
    from health.selectors import forget_settled_sums

    forget_settled_sums()
    yield


@pytest.fixture
def live_fleet(transactional_db, settings):
    """The fleet as `manage.py serve` runs it: the supervisor on the fleet loop deciding statuses and discovering
    every new session (short intervals, so tests wait for events rather than for the defaults)."""
    from fleet.calls import fleet_runtime
    from fleet.supervisor import start_supervisor, stop_supervisor

    settings.MCP_RECONNECT_INITIAL_SECONDS = 0.2
    settings.MCP_RECONNECT_MAX_SECONDS = 1.0
    supervisor = start_supervisor(fleet_runtime(), check_interval=0.5, check_timeout=2.0, flush_seconds=0.2)
    yield supervisor
    stop_supervisor()


@pytest.fixture(autouse=True)
def isolated_event_history(settings):
    """Every test its own Redis key prefix for the pipeline's history and sequence numbers (when Redis is used),
    removed afterwards, so no test sees another's events or numbers."""
    import uuid

    settings.PIPELINE_REDIS_PREFIX = f"test-{uuid.uuid4().hex[:12]}:"
    yield
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        try:
            keys = list(client.scan_iter(match=settings.PIPELINE_REDIS_PREFIX + "*", count=1_000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
