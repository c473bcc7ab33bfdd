from __future__ import annotations

from collections.abc import Iterator

import pytest

from fusion.sources import planning_cache


@pytest.fixture(autouse=True)
def fresh_planning_cache() -> Iterator[None]:
    # A test's rows are rolled back without a signal: what one test's plans kept must not plan the next one's query.
    planning_cache.clear()
    yield
    planning_cache.clear()
