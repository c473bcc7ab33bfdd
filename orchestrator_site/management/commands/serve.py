"""Serve the dashboard, the API and the WebSockets with uvicorn, and run the fleet loops in the same process.

In the embedded mode the in-memory channel layer does not cross processes, so the loops that publish events run
here, next to the web server: the fleet application (fleet/application.py), started once uvicorn listens and stopped
once it has stopped serving. On SIGINT/SIGTERM every MCP session is closed and every child process stopped.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from typing import Any

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.management.base import BaseCommand, CommandError, CommandParser

from orchestrator_site.web_server import WebServer

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Serve the orchestrator (uvicorn + fleet loops); --demo also starts and registers the demo exchange fleet."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--demo", action="store_true", help="Start and register the simulated exchange fleet.")

    def handle(self, *args: Any, **options: Any) -> None:
        from fleet.application import FleetApplication
        from orchestrator_site.asgi import application
        from orchestrator_site.demo import DemoActivity, DemoFleet, demo_alert_rules, demo_login, demo_register
        from orchestrator_site.garbage_collection import tune_for_fleet
        from orchestrator_site.trusted_origins import trust_served_origins
        from pipeline.delivery import bind_delivery_loop

        tune_for_fleet()
        host, port = options["host"], options["port"]
        # Before the first request: forms and sockets from this address's other names (localhost for 127.0.0.1)
        # are trusted on the port actually served, never on a fixed one.
        trust_served_origins(host, port)
        # Fail before starting the fleet, with a message that says what to do, rather than after.
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as error:
                raise CommandError(
                    f"cannot listen on {host}:{port}: {error.strerror}; stop what uses it or pass --port"
                ) from error
        demo = DemoFleet()
        demo_activity = DemoActivity()
        fleet = FleetApplication()
        stopped = threading.Event()

        if options["demo"]:
            self.stdout.write("Starting the demo exchange fleet...")
            demo.start_http_exchanges()
            report = demo_register(demo)
            demo_alert_rules()
            username, password = demo_login()
            self.stdout.write(
                f"Demo fleet registered (created {len(report['created'])}, updated {len(report['updated'])}, "
                f"unchanged {len(report['unchanged'])})."
            )

        def start_loops(web_loop: asyncio.AbstractEventLoop) -> None:
            # Events for the browsers are delivered on the web server's loop, which owns the in-memory channel layer.
            bind_delivery_loop(web_loop)
            # Pipeline, health (the decider), supervisor, transaction recovery: in that order (see the application).
            fleet.start()
            if options["demo"]:
                demo_activity.start()
            self.stdout.write(self.style.SUCCESS(f"Dashboard: http://{host}:{port}/   (Ctrl-C stops everything)"))
            if options["demo"] and password:
                self.stdout.write(f"Log in as {username} / {password}")
            elif options["demo"]:
                self.stdout.write(
                    f"Log in as {username} with that account's existing password "
                    f"(the demo does not change it; to set a new one: manage.py changepassword {username})"
                )

        def shut_down() -> None:
            if stopped.is_set():
                return
            stopped.set()
            self.stdout.write("Stopping: closing MCP sessions and child processes...")
            demo_activity.stop()
            fleet.stop()
            bind_delivery_loop(None)
            demo.stop()
            self.stdout.write("Stopped cleanly.")

        # The embedded server serves its own static files; a bigger deployment puts them behind a web server.
        # application.stop: the MCP endpoint's sessions end on the server's loop, before it waits for connections.
        web_server = WebServer(
            ASGIStaticFilesHandler(application),
            host=host,
            port=port,
            on_ready=start_loops,
            on_stopping=application.stop,
        )
        try:
            web_server.run()
        finally:
            shut_down()
