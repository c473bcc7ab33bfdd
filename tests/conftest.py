"""Shared fixtures: personas (admin, operator, viewer, outsider) and API clients logged in as each."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from rest_framework.test import APIClient

from registry.permissions import OPERATOR_GROUP, VIEWER_GROUP

PASSWORD = "correct-horse-battery"

# The longest test files (15-300 s each: a fuzz in its own pytest, browsers, the demo as a process, the conformance
# suite's scenarios), collected first: with `make test`'s workers (a file per worker, in collection order) they start
# at once, one to a worker, and the rest runs beside them instead of the pass ending on one of them.
LONG_TESTS_FIRST = (
    "tests/registry/test_conformance_auth.py",
    "tests/mcp_endpoint/test_conformance_server.py",
    "tests/site/test_api_fuzz_part_",
    "tests/e2e/",
    "tests/site/test_serve_command.py",
    "tests/registry/test_conformance.py",
    "tests/coordinator/test_crash_recovery.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def position(item: pytest.Item) -> int:
        matches = [rank for rank, prefix in enumerate(LONG_TESTS_FIRST) if item.nodeid.startswith(prefix)]
        return matches[0] if matches else len(LONG_TESTS_FIRST)

    items.sort(key=position)  # stable: the order within each group stays as collected


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
    """Every MCP session a test opened (through the running fleet application, or the on-demand one a call started)
    is closed, and its child reaped, after it."""
    yield
    from fleet.application import stop_running

    stop_running()


@pytest.fixture(autouse=True)
def _forget_settled_health_sums():
    """The health figures remember settled hour sums per process; each test writes its own history."""
    from health.selectors import forget_settled_sums

    forget_settled_sums()
    yield


# What a test's fleet application changes from serve's: short intervals, so tests wait for events, not defaults.
TEST_FLEET_OPTIONS = {
    "recovery": False,  # a test of recovery starts it itself
    "call_record_flush_seconds": 0.2,
    "health_refresh_seconds": 0.3,
    "sample_flush_seconds": 0.2,
    "alert_seconds": 0.3,
    "producer_refresh_seconds": 0.3,
}


@pytest.fixture
def start_fleet(transactional_db, settings):
    """Start a fleet application built as `manage.py serve` builds it (the options given override the tests'
    defaults); every one started is stopped after the test."""
    from fleet.application import FleetApplication

    settings.MCP_RECONNECT_INITIAL_SECONDS = 0.2
    settings.MCP_RECONNECT_MAX_SECONDS = 1.0
    # Health decides every status, as in production: a check every second, so a test sees them soon.
    settings.HEALTH_CHECK_INTERVAL_SECONDS = 1.0
    started: list[FleetApplication] = []

    def start(**options: object) -> FleetApplication:
        application = FleetApplication(**{**TEST_FLEET_OPTIONS, **options})  # type: ignore[arg-type]
        started.append(application)
        return application.start()

    yield start
    for application in reversed(started):
        application.stop()


@pytest.fixture
def live_fleet(start_fleet):
    """The fleet as `manage.py serve` runs it: pipeline, health monitor (the one status decider), supervisor (which
    discovers every new session and reports what it sees), balancer, all on the fleet loop."""
    return start_fleet()


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


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """SQLite's write-ahead files of this process's test database (`var/test-<pid>.sqlite3_gwN-wal`, `-shm`) outlive
    it when a thread that served the tests (a live server's, asgiref's sync thread) still holds a connection at the
    end; Django removes only the database file. Removed here, so a developer's var/ does not fill up run after run."""
    from pathlib import Path

    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.sqlite3":
        return
    name = str((database.get("TEST") or {}).get("NAME") or "")
    if not name or name.startswith(("file:", ":memory:")):
        return
    for leftover in Path(name).parent.glob(Path(name).name + "*"):
        leftover.unlink(missing_ok=True)
