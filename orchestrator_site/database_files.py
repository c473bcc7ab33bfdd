"""The SQLite file holds server secrets and API tokens: it is readable by its owner only.

sqlite creates the file with the process umask (often world-readable); its -wal and -shm files take the database
file's permissions, so tightening the file when the first connection opens covers all three.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any


def make_sqlite_file_private(sender: Any, connection: Any, **kwargs: Any) -> None:
    if connection.vendor != "sqlite":
        return
    name = str(connection.settings_dict.get("NAME") or "")
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    for path in (name, f"{name}-wal", f"{name}-shm"):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if os.stat(path).st_mode & 0o077:
                os.chmod(path, 0o600)
