"""A benchmark's own Django: a fresh SQLite database in var/bench/<name>, migrated (never the developer's data)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def setup_scratch_django(name: str, *, keep_redis: bool = False) -> Path:
    scratch = REPO / "var" / "bench" / name
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    os.environ["ORCHESTRATOR_VAR_DIR"] = str(scratch)
    os.environ.pop("DATABASE_URL", None)
    if not keep_redis:
        os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("SECRET_KEY", "bench-only-" + "x" * 50)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator_site.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return scratch
