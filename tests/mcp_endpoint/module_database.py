"""The test database for a module-scoped fixture whose tests carry no `django_db` mark (a module that starts one
fleet and one web server for all its tests and writes its rows committed, with the database unblocked).

pytest-django creates the test database only for the aliases that the run's marked (or `db`-using) tests need: when
such a module runs alone, nothing set the test database up and the rows would go to the configured database.
`own_test_database()` sets it up then, and leaves pytest-django's alone when there is one.

Whether there is one is told by the name the connection uses now against the name it was configured with, taken when
this module is imported: at collection, before any session fixture can have switched it. Django's own rule
(`creation._get_test_db_name()`) cannot tell: it derives the test name from the current NAME, so once pytest-django
has switched PostgreSQL's `dbg` to `test_dbg` it answers `test_test_dbg`, and a second test database was created and
swapped in under threads (asgiref's executor, a live server's) that were still connected to the first.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DEFAULT_DB_ALIAS, connections

CONFIGURED_NAME = connections[DEFAULT_DB_ALIAS].settings_dict["NAME"]


def switched_to_a_test_database() -> bool:
    """True when someone (pytest-django, for the run's marked tests) has switched the connection to a test database."""
    return connections[DEFAULT_DB_ALIAS].settings_dict["NAME"] != CONFIGURED_NAME


@contextmanager
def own_test_database() -> Iterator[None]:
    """The test database, set up here (and destroyed at the end) unless pytest-django did it for the run.
    Use it with the database unblocked (`django_db_blocker.unblock()`)."""
    from django.test.utils import setup_databases, teardown_databases

    if switched_to_a_test_database():
        yield
        return
    created = setup_databases(verbosity=0, interactive=False, aliases={DEFAULT_DB_ALIAS})
    try:
        yield
    finally:
        teardown_databases(created, verbosity=0)
