"""For management commands that read or write the registry: a database that was never migrated is said in one line
with what to do, instead of a traceback ending in "no such table"."""

from __future__ import annotations

from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor


def require_migrated_database(alias: str = DEFAULT_DB_ALIAS) -> None:
    executor = MigrationExecutor(connections[alias])
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if pending:
        raise CommandError(
            f"The database is not migrated yet ({len(pending)} migration(s) to apply): "
            "run `python manage.py migrate` first."
        )
