"""Probe one MCP server from the command line: connect, show what it offers, optionally call one tool.

    manage.py mcp_probe http://127.0.0.1:8765/mcp
    manage.py mcp_probe --call get_current_time --arguments '{"timezone": "UTC"}' mcp-server-time
    manage.py mcp_probe --sse http://127.0.0.1:3001/sse
    manage.py mcp_probe --oauth client_credentials --client-id svc --client-secret ... http://127.0.0.1:8765/mcp
    manage.py mcp_probe --oauth authorization_code http://127.0.0.1:8765/mcp

With `--oauth` the probe does the MCP authorization flow headless (mcp_client/oauth.py): client credentials, or an
authorization code from an authorization server that approves without a person (the probe opens the
authorization URL and takes the code from the redirect to the callback URL, as the conformance suite's server
allows). Pre-registered credentials come from the flags or, under the conformance suite, from the JSON in
MCP_CONFORMANCE_CONTEXT (`client_id`, `client_secret`).

Everything after the options is the target: a URL, or a command with its arguments. It connects through the same
connection layer as the fleet (`ServerConnection`: the transports, the outbound address policy, the elicitation
policy, the error diagnosis), just for one server and once. Any failure, including a tool that answers with an
error result, ends with a non-zero exit and one line saying why.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shlex
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from fleet.calls import capability_limits
from mcp_client import (
    BackoffPolicy,
    ConnectionLayerError,
    RequestContext,
    RequestTimedOut,
    ServerConnection,
    ServerTarget,
    SessionStreams,
)
from mcp_client.capabilities import DiscoveredCapabilities
from mcp_client.oauth import GRANT_TYPES, HeadlessApproval, MemoryGrantStore, OAuthSettings
from mcp_client.outbound import OutboundPolicy
from mcp_client.outcomes import SERVER_REQUEST_OPERATIONS
from mcp_client.transports import default_errlog

CALLER = "mcp_probe"
# Where the headless authorization server is told to send the code: never opened, the probe reads the redirect.
PROBE_REDIRECT_URI = "http://127.0.0.1/oauth/callback/"
CONFORMANCE_CONTEXT = "MCP_CONFORMANCE_CONTEXT"


def _pairs(values: list[str], option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        name, sep, content = value.partition("=")
        if not sep or not name:
            raise CommandError(f"{option} takes NAME=VALUE, got {value!r}")
        pairs[name] = content
    return pairs


class ProbeFailed(Exception):
    """One line for the person at the terminal."""


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
        parser.add_argument("--oauth", choices=GRANT_TYPES, help="Do the MCP authorization flow with this grant.")
        parser.add_argument("--client-id", default="", help="A pre-registered OAuth client (else registered).")
        parser.add_argument("--client-secret", default="", help="The pre-registered client's secret.")
        parser.add_argument("--scope", default="", help="Space-separated scopes (default: what the server asks).")
        parser.add_argument(
            "--client-metadata-url", default="", help="A client ID metadata document URL, used when the server allows."
        )
        parser.add_argument(
            "--token-endpoint-auth",
            default="",
            help="client_secret_basic, client_secret_post, none, or private_key_jwt (the secret is a PEM key).",
        )
        parser.add_argument("target", nargs=argparse.REMAINDER, help="URL, or command and its arguments.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["verbosity"] < 2:
            # The SDK logs every malformed line with a traceback; the one-line reason says what matters.
            logging.getLogger("mcp").setLevel(logging.CRITICAL)
            logging.getLogger("mcp_client").setLevel(logging.WARNING)
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
                capability_limits=capability_limits(),
                oauth=self._oauth(options) if is_url else None,
            )
        except ValueError as error:
            raise CommandError(str(error)) from error

        what = shlex.join(target_words)
        try:
            report = asyncio.run(self._probe(target, options["call"], arguments))
        except ProbeFailed as failure:
            raise CommandError(f"probe of {what} failed: {failure}") from None
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2, default=str))
        else:
            self._print(report)
        if report.get("call", {}).get("is_error"):
            raise CommandError(f"tool {options['call']} returned an error result")

    def _oauth(self, options: dict[str, Any]) -> OAuthSettings | None:
        grant = options["oauth"]
        if grant is None:
            return None
        client_id, client_secret = options["client_id"], options["client_secret"]
        context = _conformance_context()
        method = options["token_endpoint_auth"]
        if not client_id and context.get("client_id"):
            client_id, client_secret = str(context["client_id"]), str(context.get("client_secret") or "")
            if context.get("private_key_pem") and not client_secret:
                # The suite's private_key_jwt client: the key is the secret (mcp_client/oauth.py signs with it).
                client_secret, method = str(context["private_key_pem"]), method or "private_key_jwt"
        if options["client_metadata_url"] and not client_id:
            registration = "metadata_document"
        else:
            registration = "pre_registered" if client_id else "dynamic"
        outbound = OutboundPolicy.parse(settings.OUTBOUND_ALLOWED_NETWORKS)
        return OAuthSettings(
            grant=grant,
            registration=registration,
            client_id=client_id,
            client_secret=client_secret,
            scope=options["scope"],
            client_metadata_url=options["client_metadata_url"],
            redirect_uri=PROBE_REDIRECT_URI if grant == "authorization_code" else "",
            token_endpoint_auth_method=method,
            client_name="mcp_probe",
            store=MemoryGrantStore(),
            approval=HeadlessApproval(outbound),
        )

    async def _probe(self, target: ServerTarget, tool: str | None, arguments: dict[str, Any]) -> dict[str, Any]:
        streams = SessionStreams()
        server_requests = streams.outcomes.subscribe(
            name="probe", accept=lambda outcome: outcome.operation in SERVER_REQUEST_OPERATIONS
        )
        connection = ServerConnection(
            target,
            streams=streams,
            # A probe connects once: the first failure is the answer, not a reason to retry.
            backoff=BackoffPolicy(initial=60.0, maximum=60.0),
            # The server's own stderr goes straight to the terminal: when it fails to start, that is what says why.
            errlog=default_errlog(),
            outbound=OutboundPolicy.parse(settings.OUTBOUND_ALLOWED_NETWORKS),
        )
        connection.start()
        context = RequestContext(caller=CALLER)
        try:
            try:
                await connection.wait_connected(target.connect_timeout, fail_in_backoff=True)
            except ConnectionLayerError as error:
                status = connection.status()
                raise ProbeFailed(status.last_error or _reason(error)) from None
            try:
                discovered: DiscoveredCapabilities = (await connection.discover(target.request_timeout * 4)).result
            except ConnectionLayerError as error:
                raise ProbeFailed(_reason(error)) from None
            report: dict[str, Any] = {"target": target.url or shlex.join([target.command, *target.args])}
            report.update(discovered.to_dict())
            if tool:
                try:
                    answer = await connection.call_tool(tool, arguments, context=context)
                except ConnectionLayerError as error:
                    raise ProbeFailed(_reason(error)) from None
                report["call"] = {"tool": tool, "arguments": arguments, **answer.result.to_dict()}
                report["call"]["latency_ms"] = round(answer.outcome.latency_ms, 2)
            report["server_requests"] = [
                {"method": outcome.operation, "answer": outcome.error_message} for outcome in server_requests.drain()
            ]
            return report
        finally:
            await connection.stop()

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
        for truncation in (report.get("truncation") or {}).values():
            write(f"Not kept: {truncation['message']}")
        for request in report.get("server_requests", []):
            write(f"Server asked {request['method']}: {request['answer']}")
        call = report.get("call")
        if call:
            write(f"Call {call['tool']}({json.dumps(call['arguments'])}) -> {'ERROR' if call['is_error'] else 'ok'}")
            if call.get("structured_content") is not None:
                write(json.dumps(call["structured_content"], indent=2))
            else:
                for content in call.get("content", []):
                    write(content.get("text", json.dumps(content)))


def _conformance_context() -> dict[str, Any]:
    """The scenario's context the conformance suite hands its client (pre-registered credentials), if any."""
    try:
        context = json.loads(os.environ.get(CONFORMANCE_CONTEXT) or "{}")
    except json.JSONDecodeError as error:
        raise CommandError(f"{CONFORMANCE_CONTEXT} is not valid JSON: {error}") from error
    return context if isinstance(context, dict) else {}


def _reason(error: ConnectionLayerError) -> str:
    if isinstance(error, RequestTimedOut):
        return f"no answer in time ({error})"
    return str(error).replace("MCP server 'probe': ", "")
