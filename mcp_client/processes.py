"""Tracking the stdio server processes we spawn, so none outlives its session.

The SDK starts each stdio server in its own session/process group and, on a clean exit of the Client,
closes stdin, then SIGTERMs and SIGKILLs the group. That cleanup can be defeated (a natively cancelled task,
a killed event loop), and the child is then invisible to us: it is not in our process group, so it survives
Ctrl-C of the parent. We therefore learn each child's pid when its session comes up (the SDK does not expose
it, so we tag the child's environment with a per-session token and look for it in /proc) and check it again
after the session ends, killing its group if it is still there.

Linux /proc only; elsewhere the functions return nothing and the SDK's own cleanup is all there is.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal

logger = logging.getLogger(__name__)

_PROC = "/proc"


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (which may contain spaces and parentheses)."""
    try:
        with open(f"{_PROC}/{pid}/stat", "rb") as handle:
            raw = handle.read().decode(errors="replace")
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def child_pids(parent: int | None = None) -> set[int]:
    """Live (non-zombie) direct children of `parent` (default: this process)."""
    parent = os.getpid() if parent is None else parent
    if not os.path.isdir(_PROC):
        return set()
    children: set[int] = set()
    for name in os.listdir(_PROC):
        if not name.isdigit():
            continue
        fields = _stat_fields(int(name))
        # fields[0] is the state, fields[1] the ppid.
        if fields and len(fields) > 1 and fields[1] == str(parent) and fields[0] != "Z":
            children.add(int(name))
    return children


def is_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    fields = _stat_fields(pid)
    if fields is None:
        return False
    return fields[0] != "Z"


SESSION_ENV = "MCP_ORCHESTRATOR_SESSION"
"""Set in every stdio child's environment to a per-session token, so the child can be told apart from its
siblings (several servers often run the same command line) by reading /proc/PID/environ."""


def _environ_has(pid: int, needle: bytes) -> bool:
    try:
        with open(f"{_PROC}/{pid}/environ", "rb") as handle:
            return needle in handle.read().split(b"\0")
    except OSError:
        return False


def identify_child(before: set[int], token: str) -> int | None:
    """The child spawned since `before` whose environment carries this session's token, if any."""
    needle = f"{SESSION_ENV}={token}".encode()
    for pid in child_pids() - before:
        if _environ_has(pid, needle):
            return pid
    return None


def kill_group(pid: int) -> None:
    """SIGKILL the process group the SDK put the server in (it is the group leader), or the process."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            os.kill(pid, signal.SIGKILL)
