from __future__ import annotations

from django.apps import AppConfig


class OrchestratorSiteConfig(AppConfig):
    name = "orchestrator_site"
    verbose_name = "Orchestrator site"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from orchestrator_site import deploy_checks  # noqa: F401  (registers the deploy checks)
        from orchestrator_site.database_files import make_sqlite_file_private

        connection_created.connect(make_sqlite_file_private, dispatch_uid="private-sqlite-file")
