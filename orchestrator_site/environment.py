"""Typed readers for settings that come from the environment, so settings.py stays declarative."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{name} must be a boolean (1/0, true/false, yes/no, on/off), got {raw!r}")


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc


# Where the key generated for local use is kept, inside the var directory (beside the database and the demo's
# admin password).
LOCAL_SECRET_KEY_FILE = "secret-key.txt"


def local_secret_key(var_dir: Path) -> str:
    """The secret key for local use when SECRET_KEY is not set: generated once into `var_dir` and read from there on
    every later start, so sessions survive restarts and a fresh clone's management commands run with nothing set.
    Production sets SECRET_KEY (`check --deploy` warns otherwise)."""
    return local_key(var_dir, LOCAL_SECRET_KEY_FILE, lambda: secrets.token_urlsafe(50), setting="SECRET_KEY")


def local_key(var_dir: Path, file_name: str, generate: Callable[[], str], *, setting: str) -> str:
    """A key for local use, generated once by `generate` into `var_dir / file_name` (mode 0600, the directory 0700)
    and read from there afterwards. `setting` is what production sets instead (named in the error).

    Several processes may start at once (serve and a command, test workers): the file is created exclusively, and a
    reader that finds it still empty waits briefly for its writer."""
    var_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = var_dir / file_name
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):
            key = path.read_text().strip()
            if key:
                return key
            time.sleep(0.02)
        raise RuntimeError(f"{path} is empty: delete it to generate a new key, or set {setting}") from None
    key = generate()
    with os.fdopen(descriptor, "w") as file:
        file.write(key + "\n")
    return key
