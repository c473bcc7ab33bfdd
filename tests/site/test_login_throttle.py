"""The failed-login throttle under concurrency and across addresses, on the local-memory cache and (when REDIS_URL is
set) on Redis: counting is atomic, a guesser at one address does not lock the owner out from another, and a refused
attempt answers 429 with Retry-After before any password is checked."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.signals import user_login_failed
from django.db import connection
from django.test import Client

PASSWORD = "correct-horse-battery"  # the personas' password (tests/conftest.py)
GUESSER = "10.0.0.66"
OWNER = "10.0.0.7"


@pytest.fixture(params=["locmem", "redis"])
def throttle_cache(request, settings) -> Iterator[str]:
    """A cache of its own for each test (its own local-memory store, or its own key prefix in Redis)."""
    prefix = f"login-throttle-test-{uuid.uuid4().hex[:12]}"
    if request.param == "redis":
        if not django_settings.REDIS_URL:
            pytest.skip("REDIS_URL is not set")
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": django_settings.REDIS_URL,
                "KEY_PREFIX": prefix,
            }
        }
    else:
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": prefix}}
    yield request.param
    if request.param == "redis":
        import redis

        client = redis.Redis.from_url(django_settings.REDIS_URL)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1_000))
        if keys:
            client.delete(*keys)


@pytest.fixture
def real_password_hashing(settings) -> None:
    """The production hasher (the suite's settings use a fast one), requested before the personas so they are hashed
    with it: the parallel test needs its slowness, which is what opens the race."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]


def _token(username: str, password: str, address: str):
    return Client(REMOTE_ADDR=address).post("/api/auth/token/", {"username": username, "password": password})


@pytest.mark.django_db(transaction=True)
def test_thirty_parallel_wrong_passwords_get_at_most_the_limit_of_password_checks(
    throttle_cache, real_password_hashing, admin_user
):
    limit = django_settings.LOGIN_THROTTLE_FAILURES_PER_ACCOUNT
    checked: list[str] = []
    lock = threading.Lock()

    def count_check(sender, credentials, **kwargs) -> None:
        with lock:
            checked.append(credentials.get("username", ""))

    user_login_failed.connect(count_check, dispatch_uid="test-login-throttle-checks")
    start = threading.Barrier(30)
    statuses: list[tuple[int, str | None]] = []

    def guess(number: int) -> None:
        try:
            start.wait()
            response = _token(admin_user.username, f"wrong-{number}", GUESSER)
            with lock:
                statuses.append((response.status_code, response.headers.get("Retry-After")))
        finally:
            connection.close()

    threads = [threading.Thread(target=guess, args=(number,)) for number in range(30)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    finally:
        user_login_failed.disconnect(dispatch_uid="test-login-throttle-checks")

    assert len(statuses) == 30
    assert len(checked) <= limit, f"{len(checked)} passwords checked, limit {limit}"
    assert sorted(code for code, _ in statuses).count(400) == len(checked)
    refused = [retry_after for code, retry_after in statuses if code == 429]
    assert len(refused) == 30 - len(checked) >= 30 - limit
    window = django_settings.LOGIN_THROTTLE_WINDOW_SECONDS
    assert all(retry_after is not None and 0 < int(retry_after) <= window for retry_after in refused), refused


@pytest.mark.django_db
def test_the_owner_logs_in_from_another_address_while_a_guesser_is_blocked(throttle_cache, admin_user, settings):
    # A total just above the pair's limit: refused attempts must not spend it, or the hammering below would.
    settings.LOGIN_THROTTLE_FAILURES_PER_ACCOUNT_TOTAL = settings.LOGIN_THROTTLE_FAILURES_PER_ACCOUNT + 5
    for _ in range(settings.LOGIN_THROTTLE_FAILURES_PER_ACCOUNT):
        assert _token(admin_user.username, "wrong", GUESSER).status_code == 400
    for _ in range(30):
        refused = _token(admin_user.username, PASSWORD, GUESSER)
        assert refused.status_code == 429 and "Too many failed logins" in refused.json()["detail"]
        assert 0 < int(refused["Retry-After"]) <= settings.LOGIN_THROTTLE_WINDOW_SECONDS

    owner = _token(admin_user.username, PASSWORD, OWNER)
    assert owner.status_code == 200 and owner.json()["token"]
    page = Client(REMOTE_ADDR=OWNER).post("/accounts/login/", {"username": admin_user.username, "password": PASSWORD})
    assert page.status_code == 302
    # The guesser's address is still blocked for that account.
    assert _token(admin_user.username, PASSWORD, GUESSER).status_code == 429


@pytest.mark.django_db
def test_guesses_spread_over_addresses_block_the_account_at_its_total(throttle_cache, admin_user, settings):
    settings.LOGIN_THROTTLE_FAILURES_PER_ACCOUNT = 3
    settings.LOGIN_THROTTLE_FAILURES_PER_ACCOUNT_TOTAL = 6
    for address in ("10.0.1.1", "10.0.1.2"):
        for _ in range(3):
            assert _token(admin_user.username, "wrong", address).status_code == 400
    refused = _token(admin_user.username, PASSWORD, OWNER)
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    # Other accounts from those addresses are not concerned.
    assert _token("someone-else", "wrong", "10.0.1.1").status_code == 400


@pytest.mark.django_db
def test_the_login_page_answers_429_with_retry_after_once_the_pair_is_spent(throttle_cache, viewer_user, settings):
    guesser = Client(REMOTE_ADDR=GUESSER)
    for _ in range(settings.LOGIN_THROTTLE_FAILURES_PER_ACCOUNT):
        assert guesser.post("/accounts/login/", {"username": viewer_user.username, "password": "x"}).status_code == 200
    blocked = guesser.post("/accounts/login/", {"username": viewer_user.username, "password": PASSWORD})
    assert blocked.status_code == 429 and b"Too many failed logins" in blocked.content
    assert 0 < int(blocked["Retry-After"]) <= settings.LOGIN_THROTTLE_WINDOW_SECONDS
    assert "_auth_user_id" not in guesser.session
    owner = Client(REMOTE_ADDR=OWNER)
    assert owner.post("/accounts/login/", {"username": viewer_user.username, "password": PASSWORD}).status_code == 302
