"""The optional ledger file: one JSON document, replaced atomically after every change.

Atomic means a reader (or the exchange restarting after a crash or a SIGKILL) sees either the previous state or
the new one, never half a file: the new state goes to a temporary file in the same directory, is flushed to disk,
and then renamed over the old one with `os.replace` (atomic on POSIX within one filesystem).

One file belongs to one running exchange; two processes sharing a path would overwrite each other's state.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

LEDGER_FILE_VERSION = 1


class LedgerFile:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, Any] | None:
        """The stored state, or None if there is no file yet. ValueError if the file is not a ledger state.

        A corrupt file stops the exchange from starting rather than silently resetting its balances.
        """
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            state = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"ledger file {self.path} is not valid JSON: {exc}") from None
        if not isinstance(state, dict) or state.get("version") != LEDGER_FILE_VERSION:
            found = state.get("version") if isinstance(state, dict) else type(state).__name__
            raise ValueError(
                f"ledger file {self.path} has format version {found!r}; this exchange reads version"
                f" {LEDGER_FILE_VERSION}"
            )
        return state

    def save(self, state: dict[str, Any]) -> None:
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(state, handle, separators=(",", ":"))
                handle.flush()
                # Without fsync a machine crash right after the rename can leave an empty file behind it.
                os.fsync(handle.fileno())
            os.replace(temp_name, self.path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
