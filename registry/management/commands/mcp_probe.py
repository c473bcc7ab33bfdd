"""Probe one MCP server from the command line: connect, show what it offers, optionally call one tool.

    manage.py mcp_probe http://127.0.0.1:8765/mcp
    manage.py mcp_probe --call get_current_time --arguments '{"timezone": "UTC"}' mcp-server-time
    manage.py mcp_probe --sse http://127.0.0.1:3001/sse

Everything after the options is the target: a URL, or a command with its arguments. Any failure ends with a
non-zero exit and one line saying why.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shlex
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from mcp import MCPError
from mcp_types import CONNECTION_CLOSED

from registry.connections.capabilities import DiscoveredCapabilities, dump, fetch_capabilities
from registry.connections.targets import ServerTarget
from registry.connections.transports import build_client


def _pairs(values: list[str], option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        name, sep, content = value.partition("=")
        if not sep or not name:
            raise CommandError(f"{option} takes NAME=VALUE, got {value!r}")
        pairs[name] = content
    return pairs


def _one_line_reason(error: BaseException) -> str:
    """The most specific message inside an error, exception groups included, on one line."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    if isinstance(error, MCPError):
        if error.code == CONNECTION_CLOSED:
            return "the connection closed: the server exited or closed its output (see its stderr above)"
        return f"the server answered error {error.code}: {error.message}"
    if isinstance(error, TimeoutError):
        return "no answer in time"
    if isinstance(error, FileNotFoundError):
        return f"command not found: {error.filename or error}"
    message = str(error) or type(error).__name__
    return " ".join(message.split())


class Command(BaseCommand):
    help = "Connect to an MCP server (URL or command), print its era, info, tools, resources and prompts."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--call", metavar="TOOL", help="Call this tool after listing.")
        parser.add_argument("--arguments", default="{}", help="JSON object of arguments for --call.")
        parser.add_argument("--sse", action="store_true", help="The URL is a legacy SSE endpoint.")
        parser.add_argument("--header", action="append", default=[], help="NAME=VALUE (HTTP), repeatable.")
        parser.add_argument("--env", action="append", default=[], help="NAME=VALUE (stdio), repeatable.")
        parser.add_argument("--cwd", help="Working directory of a stdio server.")
        parser.add_argument("--timeout", type=float, default=20.0, help="Seconds for connecting and each request.")
        parser.add_argument("--legacy", action="store_true", help="Skip server/discover; use the handshake.")
        parser.add_argument("--json", action="store_true", help="Print one JSON document instead of text.")
        parser.add_argument("target", nargs=argparse.REMAINDER, help="URL, or command and its arguments.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["verbosity"] < 2:
            # The SDK logs every malformed line with a traceback; the one-line reason says what matters.
            logging.getLogger("mcp").setLevel(logging.CRITICAL)
        target_words = [word for word in options["target"] if word != "--"] if options["target"] else []
        if not target_words:
            raise CommandError("give the server as the last argument: a URL, or a command with its arguments")
        try:
            arguments = json.loads(options["arguments"])
        except json.JSONDecodeError as error:
            raise CommandError(f"--arguments is not valid JSON: {error}") from error
        if not isinstance(arguments, dict):
            raise CommandError("--arguments must be a JSON object")
        if options["timeout"] <= 0:
            raise CommandError("--timeout must be positive")

        first = target_words[0]
        is_url = first.startswith(("http://", "https://"))
        try:
            target = ServerTarget(
                key="probe",
                transport=("sse" if options["sse"] else "http") if is_url else "stdio",
                url=first if is_url else "",
                command="" if is_url else first,
                args=() if is_url else tuple(target_words[1:]),
                headers=_pairs(options["header"], "--header"),
                env=_pairs(options["env"], "--env"),
                cwd=options["cwd"],
                request_timeout=options["timeout"],
                connect_timeout=options["timeout"],
                mode="legacy" if options["legacy"] else "auto",
            )
        except ValueError as error:
            raise CommandError(str(error)) from error

        try:
            report = asyncio.run(self._probe(target, options["call"], arguments, options["timeout"]))
        except (Exception, BaseExceptionGroup) as error:  # any failure is reported in one line
            what = shlex.join(target_words)
            raise CommandError(f"probe of {what} failed: {_one_line_reason(error)}") from None
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2, default=str))
        else:
            self._print(report)
        if report.get("call", {}).get("is_error"):
            raise CommandError(f"tool {options['call']} returned an error result")

    async def _probe(
        self, target: ServerTarget, tool: str | None, arguments: dict[str, Any], seconds: float
    ) -> dict[str, Any]:
        client = build_client(target)
        async with asyncio.timeout(seconds):
            await client.__aenter__()
        try:
            async with asyncio.timeout(seconds * 4):
                discovered: DiscoveredCapabilities = await fetch_capabilities(client)
            report: dict[str, Any] = {"target": target.url or shlex.join([target.command, *target.args])}
            report.update(discovered.to_dict())
            if tool:
                async with asyncio.timeout(seconds):
                    result = await client.call_tool(tool, arguments)
                report["call"] = {"tool": tool, "arguments": arguments, **dump(result)}
                report["call"]["is_error"] = bool(result.is_error)
            return report
        finally:
            await client.__aexit__(None, None, None)

    def _print(self, report: dict[str, Any]) -> None:
        write = self.stdout.write
        info = report.get("server_info") or {}
        write(f"Server:   {info.get('name', '?')} {info.get('version', '')}".rstrip())
        write(f"Target:   {report['target']}")
        write(f"Protocol: {report['protocol_version']} ({report['era']} era)")
        if report.get("instructions"):
            write(f"Instructions: {' '.join(report['instructions'].split())[:300]}")
        sections = [
            ("Tools", report["tools"], lambda item: item["name"]),
            ("Resources", report["resources"], lambda item: item["uri"]),
            ("Resource templates", report["resource_templates"], lambda item: item.get("uriTemplate", "")),
            ("Prompts", report["prompts"], lambda item: item["name"]),
        ]
        for title, items, label in sections:
            write(f"{title} ({len(items)}):")
            for item in items:
                description = " ".join(str(item.get("description") or "").split())
                extra = ""
                if title == "Tools":
                    params = list((item.get("inputSchema") or {}).get("properties", {}))
                    extra = f"({', '.join(params)})"
                write(f"  - {label(item)}{extra}" + (f": {description[:100]}" if description else ""))
        call = report.get("call")
        if call:
            write(f"Call {call['tool']}({json.dumps(call['arguments'])}) -> {'ERROR' if call['is_error'] else 'ok'}")
            if call.get("structuredContent") is not None:
                write(json.dumps(call["structuredContent"], indent=2))
            else:
                for content in call.get("content", []):
                    write(content.get("text", json.dumps(content)))
