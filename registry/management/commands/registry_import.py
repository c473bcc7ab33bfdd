from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from orchestrator_site.database_ready import require_migrated_database
from registry.transfer import ImportDocumentError, registry_import


class Command(BaseCommand):
    help = "Create or update servers from a registry export document: validated in full first, all or nothing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="The JSON document ('-' for standard input).")
        parser.add_argument("--dry-run", action="store_true", help="Validate and report, write nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        require_migrated_database()
        try:
            if options["path"] == "-":
                import sys

                document = json.load(sys.stdin)
            else:
                with open(options["path"], encoding="utf-8") as handle:
                    document = json.load(handle)
        except OSError as error:
            raise CommandError(f"cannot read {options['path']}: {error.strerror}") from error
        except json.JSONDecodeError as error:
            raise CommandError(f"{options['path']} is not valid JSON: {error}") from error
        try:
            report = registry_import(document=document, dry_run=options["dry_run"])
        except ImportDocumentError as error:
            raise CommandError("\n".join(["Nothing was imported:", *(f"  - {p}" for p in error.problems)])) from error
        prefix = "Dry run, nothing written: would have " if report.dry_run else ""
        self.stdout.write(
            f"{prefix}created {len(report.created)}, updated {len(report.updated)}, unchanged {len(report.unchanged)}"
        )
        for label, names in (("created", report.created), ("updated", report.updated)):
            for name in names:
                self.stdout.write(f"  {label}: {name}")
