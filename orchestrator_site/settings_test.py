"""Settings for the test suite: the embedded defaults (DEBUG stays off, as Django's test environment has it) with a
development key, since the tests need no production secret."""

from __future__ import annotations

import os

os.environ.setdefault("SECRET_KEY", "test-only-insecure-key-for-the-suite")

from orchestrator_site.settings import *  # noqa: E402, F403
