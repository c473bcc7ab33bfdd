"""PostgreSQL for the test suite: Django's backend with a cheaper way to empty the tables between tests.

A transactional test ends with a flush: Django's is one TRUNCATE of every table, which makes PostgreSQL create new
files for each of some fifty tables (about 0.2 s a test, on the server's CPU), and then the post_migrate signal
writes the content types and permissions back. DELETE of a few rows is far cheaper, and the content types and
permissions are left in place (the signal then finds them all there). Foreign keys are deferrable in Django's schema,
so one transaction deletes in any order. Used only by orchestrator_site/settings_test.py.

At the end of a run the test database is dropped, which PostgreSQL refuses while any session is still connected to it:
threads that served the tests (a live server's, asgiref's executor threads, a fleet's database workers) keep their
own connections open until they are garbage collected. Those sessions are ended first, on this test database only.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.postgresql import base, creation, operations

# Written back by post_migrate after every flush, identical each time: kept rather than deleted and rewritten.
KEPT_TABLES = frozenset({"django_content_type", "auth_permission", "django_migrations"})


class DatabaseOperations(operations.DatabaseOperations):
    def sql_flush(
        self, style: Any, tables: list[str], *, reset_sequences: bool = False, allow_cascade: bool = False
    ) -> list[str]:
        if reset_sequences:  # a test that asked for fresh sequences: Django's own TRUNCATE ... RESTART IDENTITY
            return super().sql_flush(style, tables, reset_sequences=True, allow_cascade=allow_cascade)
        emptied = [table for table in tables if table not in KEPT_TABLES]
        if not emptied:
            return []
        return ["SET CONSTRAINTS ALL DEFERRED"] + [f"DELETE FROM {self.quote_name(table)}" for table in emptied]


class DatabaseCreation(creation.DatabaseCreation):
    def _destroy_test_db(self, test_database_name: str, verbosity: int) -> None:
        with self._nodb_cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [test_database_name],
            )
        super()._destroy_test_db(test_database_name, verbosity)


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
    creation_class = DatabaseCreation
