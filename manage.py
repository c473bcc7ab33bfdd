#!/usr/bin/env python
"""Django's command-line utility for the MCP Orchestrator."""

import os
import sys


def main() -> None:
    # Before the imports: Django and the MCP SDK create ~a million long-lived objects at start-up, and the default
    # young-generation threshold collects them over and over (a fifth of a command's start-up CPU).
    from orchestrator_site.garbage_collection import tune_for_fleet

    tune_for_fleet()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator_site.settings")
    # As if the virtualenv were activated: stdio servers installed in it (mcp-server-time) run by their name.
    scripts = os.path.dirname(sys.executable)
    if scripts not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = scripts + os.pathsep + os.environ.get("PATH", "")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
