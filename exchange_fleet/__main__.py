"""Command line: run one simulated exchange, or list the demo fleet.

    python -m exchange_fleet list
    python -m exchange_fleet serve --profile alpha                       # stdio
    python -m exchange_fleet serve --profile epsilon --transport streamable-http --port 8765
    python -m exchange_fleet serve --profile delta --latency-ms 200 --error-rate 0.3 --outage 5:10
    python -m exchange_fleet serve --profile alpha --ledger-path /tmp/alpha.json --lose-confirm-replies 1
    python -m exchange_fleet serve-host --port 8790    # fresh exchanges on request (POST /exchanges), for the tests

Knob precedence: demo profile < EXCHANGE_FLEET_* environment variables < flags.
Over stdio, stdout carries the protocol, so every log line goes to stderr.
"""

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer

from exchange_fleet.profiles import DEMO_FLEET, ExchangeProfile, overrides_from_env, parse_outage, profile_by_name
from exchange_fleet.server import ExchangeRuntime, build_exchange_server

logger = logging.getLogger("exchange_fleet")

# Flag dest -> profile field, for the knobs that map one to one.
_FLAG_FIELDS: dict[str, str] = {
    "latency_ms": "base_latency_ms",
    "jitter_ms": "jitter_ms",
    "error_rate": "error_rate",
    "price_bias": "price_bias",
    "taker_fee": "taker_fee",
    "spread_bps": "spread_bps",
    "tick_interval": "tick_interval_s",
    "seed": "seed",
    "reservation_ttl": "reservation_ttl_s",
    "outage_period": "outage_period_s",
    "lose_confirm_replies": "lose_confirm_replies",
    "ledger_path": "ledger_path",
}


def _outage_arg(text: str) -> tuple[float, float]:
    try:
        return parse_outage(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m exchange_fleet", description="Simulated crypto exchanges over MCP")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="print the demo fleet's profiles as JSON")

    serve = sub.add_parser("serve", help="serve one exchange as an MCP server")
    serve.add_argument("--profile", required=True, help="demo profile name: " + ", ".join(p.name for p in DEMO_FLEET))
    serve.add_argument(
        "--transport", choices=["stdio", "streamable-http"], help="default: the profile's transport (usually stdio)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="HTTP port (default: the profile's http_port, else 8000)")
    serve.add_argument("--path", default="/mcp", help="HTTP endpoint path (default /mcp)")
    serve.add_argument("--latency-ms", type=float, help="base latency added to every tool call")
    serve.add_argument("--jitter-ms", type=float, help="uniform +/- jitter around the base latency")
    serve.add_argument("--error-rate", type=float, help="fraction of tool calls failing with 'simulated failure'")
    serve.add_argument("--price-bias", type=float, help="relative quote bias, e.g. 0.005 = 0.5%% high")
    serve.add_argument("--taker-fee", type=float, help="taker fee as a fraction of notional, e.g. 0.001")
    serve.add_argument("--spread-bps", type=float, help="bid/ask spread in basis points")
    serve.add_argument("--tick-interval", type=float, help="seconds between price ticks")
    serve.add_argument("--seed", type=int, help="random-walk seed")
    serve.add_argument("--reservation-ttl", type=float, help="seconds before an unconfirmed reservation expires")
    serve.add_argument(
        "--outage",
        action="append",
        type=_outage_arg,
        metavar="START:END",
        help="outage window in seconds after start (repeatable; replaces the profile's windows)",
    )
    serve.add_argument("--outage-period", type=float, help="repeat the outage windows with this period (s)")
    serve.add_argument("--no-outages", action="store_true", help="remove the profile's outage windows")
    serve.add_argument(
        "--lose-confirm-replies",
        type=int,
        metavar="N",
        help="the next N confirm_order calls that execute a fill then fail, as if the reply was lost",
    )
    serve.add_argument(
        "--ledger-path",
        metavar="FILE",
        help="JSON file the balances and reservations are saved to after every change and resumed from at start",
    )
    serve.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"])
    serve.add_argument("--access-log", action="store_true", help="log every HTTP request (streamable-http only)")

    many = sub.add_parser("serve-many", help="serve COUNT copies of one exchange over Streamable HTTP, at /x<i>/mcp")
    many.add_argument("--profile", default="alpha", help="the demo profile every copy is based on")
    many.add_argument("--count", type=int, required=True, help="how many exchanges")
    many.add_argument("--host", default="127.0.0.1")
    many.add_argument("--port", type=int, required=True)
    many.add_argument("--latency-ms", type=float, help="base latency of every tool call (default: the profile's)")
    many.add_argument("--jitter-ms", type=float, help="uniform +/- jitter around it (default: the profile's)")
    many.add_argument("--error-rate", type=float, help="fraction of failing tool calls (default: the profile's)")
    many.add_argument("--tick-interval", type=float, help="seconds between price ticks (default: the profile's)")
    many.add_argument("--no-outages", action="store_true", help="remove the profile's outage windows")
    many.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"])

    host = sub.add_parser(
        "serve-host", help="make a fresh exchange on each POST /exchanges {argv: [serve flags]}, served at /e/<key>/mcp"
    )
    host.add_argument("--host", default="127.0.0.1")
    host.add_argument("--port", type=int, required=True)
    host.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"])
    return parser


def resolve_profile(args: argparse.Namespace, environ: dict[str, str] | os._Environ[str]) -> ExchangeProfile:
    """Demo profile, then environment overrides, then flags. ValueError on bad input."""
    profile = profile_by_name(args.profile)
    overrides: dict[str, Any] = overrides_from_env(environ)
    for dest, field_name in _FLAG_FIELDS.items():
        value = getattr(args, dest)
        if value is not None:
            overrides[field_name] = value
    if args.no_outages:
        overrides["outage_windows"] = ()
        overrides["outage_period_s"] = None
    if args.outage:
        overrides["outage_windows"] = tuple(args.outage)
    if args.transport:
        overrides["transport"] = args.transport
    return profile.with_overrides(**overrides)


async def _serve_stdio(server: MCPServer[ExchangeRuntime], profile: ExchangeProfile) -> None:
    async with anyio.create_task_group() as tg:

        async def stop_on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    logger.info("exchange %s: %s received, shutting down", profile.name, signal.Signals(signum).name)
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(stop_on_signal)
        # Returns when stdin reaches EOF (the client went away).
        await server.run_stdio_async()
        logger.info("exchange %s: stdin closed, shutting down", profile.name)
        tg.cancel_scope.cancel()


def _serve_http(
    server: MCPServer[ExchangeRuntime],
    profile: ExchangeProfile,
    *,
    host: str,
    port: int,
    path: str,
    log_level: str,
    access_log: bool,
) -> None:
    import uvicorn

    # host= lets the SDK enable DNS-rebinding protection for loopback binds.
    app = server.streamable_http_app(streamable_http_path=path, host=host)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level.lower(),
        access_log=access_log,
        # Open listen streams would otherwise hold shutdown until clients leave.
        timeout_graceful_shutdown=3,
    )
    # uvicorn handles SIGINT/SIGTERM itself (graceful shutdown) and re-raises the
    # signal afterwards to "restore default behaviour"; ignoring that re-raise lets the
    # process exit 0 instead of dying by signal after a clean shutdown.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)
    logger.info("exchange %s: serving Streamable HTTP on http://%s:%d%s", profile.name, host, port, path)
    anyio.run(uvicorn.Server(config).serve)


def _serve_many(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import uvicorn

    from exchange_fleet.many import build_many_app

    logging.basicConfig(stream=sys.stderr, level=args.log_level)
    try:
        overrides: dict[str, Any] = {"transport": "streamable-http"}
        if args.tick_interval is not None:
            overrides["tick_interval_s"] = args.tick_interval
        if args.latency_ms is not None:
            overrides["base_latency_ms"] = args.latency_ms
        if args.jitter_ms is not None:
            overrides["jitter_ms"] = args.jitter_ms
        if args.error_rate is not None:
            overrides["error_rate"] = args.error_rate
        if args.no_outages:
            overrides["outage_windows"], overrides["outage_period_s"] = (), None
        base = profile_by_name(args.profile).with_overrides(**overrides)
        app = build_many_app(base, args.count, host=args.host)
    except ValueError as exc:
        parser.error(str(exc))
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=3,
        backlog=4096,
    )
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)
    anyio.run(uvicorn.Server(config).serve)
    return 0


def hosted_profile(serve_argv: list[str]) -> ExchangeProfile:
    """The profile `serve <serve_argv>` would run (flags over the demo profile; no environment overrides, so every
    hosted exchange is what its flags say). ValueError on bad flags."""
    parser = build_parser()
    try:
        args = parser.parse_args(["serve", *serve_argv])
    except SystemExit:
        raise ValueError(f"bad serve flags: {serve_argv}") from None
    return resolve_profile(args, {})


def _serve_host(args: argparse.Namespace) -> int:
    import uvicorn

    from exchange_fleet.many import ExchangeHost

    logging.basicConfig(stream=sys.stderr, level=args.log_level)
    config = uvicorn.Config(
        ExchangeHost(hosted_profile, host=args.host),
        host=args.host,
        port=args.port,
        log_level=args.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=3,
        lifespan="on",
    )
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)
    anyio.run(uvicorn.Server(config).serve)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    if args.command == "list":
        json.dump([p.to_dict() for p in DEMO_FLEET], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0

    if args.command == "serve-many":
        return _serve_many(args, parser)

    if args.command == "serve-host":
        return _serve_host(args)

    # Before the server is built: MCPServer calls logging.basicConfig, which is a no-op
    # once a handler exists, so this stderr handler wins and stdout stays protocol-only.
    logging.basicConfig(
        stream=sys.stderr, level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        profile = resolve_profile(args, os.environ)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        # Built here, before serving, so an unreadable ledger file stops the start with a clear message.
        server = build_exchange_server(profile)
    except (ValueError, OSError) as exc:
        logger.error("exchange %s: cannot start: %s", profile.name, exc)
        return 1

    if profile.transport == "stdio":
        logger.info("exchange %s: serving over stdio", profile.name)
        # A SIGINT landing before the signal receiver is installed is still a clean exit.
        with contextlib.suppress(KeyboardInterrupt):
            anyio.run(_serve_stdio, server, profile)
        return 0

    port = args.port if args.port is not None else (profile.http_port or 8000)
    _serve_http(
        server,
        profile,
        host=args.host,
        port=port,
        path=args.path,
        log_level=args.log_level,
        access_log=args.access_log,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
