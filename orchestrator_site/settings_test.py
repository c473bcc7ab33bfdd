"""Settings for the test suite: the embedded defaults (DEBUG stays off, as Django's test environment has it) with a
development key, since the tests need no production secret."""

from __future__ import annotations

import os

os.environ.setdefault("SECRET_KEY", "test-only-insecure-key-for-the-suite")

from orchestrator_site.settings import *  # noqa: E402, F403
from orchestrator_site.settings import CACHES, CHANNEL_LAYERS, REDIS_URL  # noqa: E402

# Parallel test workers (pytest-xdist) share one Redis: each gets its own channel-layer namespace and its own Redis
# database for the cache, so one worker's group messages and throttle counts never reach another's tests, and a
# test's cache.clear() (a FLUSHDB) empties only its own worker's cache. (Databases are per worker already:
# pytest-django suffixes PostgreSQL's test database, and SQLite's test file is per process.)
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if REDIS_URL and _WORKER:
    from urllib.parse import urlsplit, urlunsplit

    CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = f"test-{_WORKER}"
    CACHES["default"]["KEY_PREFIX"] = f"test-{_WORKER}"
    # gw0 -> database 1, gw1 -> 2, ...: database 0 keeps what the workers share (the pipeline's streams, by prefix).
    _cache_url = urlsplit(REDIS_URL)._replace(path=f"/{1 + int(_WORKER.removeprefix('gw') or 0) % 15}")
    CACHES["default"]["LOCATION"] = urlunsplit(_cache_url)

# Password hashing is not under test: PBKDF2's deliberate cost (about 0.3 s of CPU per user created or password
# checked, and on every failed login, which hashes to keep its timing) made a third of the API fuzz's request time
# and a part of every test with a persona. Django's own advice for test settings. (Processes a test starts with the
# production settings, such as the demo, keep PBKDF2.)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":  # noqa: F405
    # The same PostgreSQL backend, emptying tables between transactional tests with DELETE (see that module).
    DATABASES["default"]["ENGINE"] = "orchestrator_site.postgresql_for_tests"  # noqa: F405
