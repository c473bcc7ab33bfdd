from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from orchestrator_site.database_ready import require_migrated_database
from registry.transfer import registry_export


class Command(BaseCommand):
    help = "Write the registry as a versioned JSON document (secrets only with --include-secrets)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--include-secrets", action="store_true", help="Include env and header values.")
        parser.add_argument("-o", "--output", help="File to write (default: standard output).")

    def handle(self, *args: Any, **options: Any) -> None:
        require_migrated_database()
        document = json.dumps(registry_export(include_secrets=options["include_secrets"]), indent=2) + "\n"
        if options["output"]:
            with open(options["output"], "w", encoding="utf-8") as handle:
                handle.write(document)
            self.stderr.write(f"Wrote {len(json.loads(document)['servers'])} servers to {options['output']}")
        else:
            sys.stdout.write(document)
