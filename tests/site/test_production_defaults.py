"""Production-safe defaults: DEBUG off unless asked for, `check --deploy` clean when configured, a private database
file, and a demo that never changes an existing user's password."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User

REPO = Path(settings.BASE_DIR)


def run_manage(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    # The embedded defaults (SQLite in ORCHESTRATOR_VAR_DIR), whatever database this run uses.
    dropped = ("DEBUG", "SECRET_KEY", "DJANGO_SETTINGS_MODULE", "DATABASE_URL")
    base = {k: v for k, v in os.environ.items() if k not in dropped}
    return subprocess.run(
        [sys.executable, str(REPO / "manage.py"), *args],
        env={**base, "DJANGO_SETTINGS_MODULE": "orchestrator_site.settings", **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def test_debug_is_off_unless_asked_for(tmp_path):
    probe = "from django.conf import settings; print(settings.DEBUG, settings.SESSION_COOKIE_SECURE)"
    done = run_manage("shell", "-c", probe, env={"SECRET_KEY": "k" * 60, "ORCHESTRATOR_VAR_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == ["False", "True"]
    demo = run_manage("shell", "-c", probe, env={"DEBUG": "1", "ORCHESTRATOR_VAR_DIR": str(tmp_path)})
    assert demo.stdout.split()[-2:] == ["True", "False"]


def test_management_commands_run_on_a_fresh_clone_with_nothing_set(tmp_path):
    """No SECRET_KEY, no DEBUG: a key is generated once into the var directory (0600) and kept for the next run."""
    var = tmp_path / "var"  # not there yet, as on a fresh clone
    fresh = {"ORCHESTRATOR_VAR_DIR": str(var)}
    for command in (("mcp_probe", "--help"), ("createsuperuser", "--help")):
        done = run_manage(*command, env=fresh)
        assert done.returncode == 0 and "Traceback" not in done.stderr, (command, done.stderr)
        assert "usage: manage.py" in done.stdout
    key_file = var / "secret-key.txt"
    key = key_file.read_text().strip()
    assert len(key) >= 50 and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(var.stat().st_mode) == 0o700

    unmigrated = run_manage("registry_export", env=fresh)
    assert unmigrated.returncode == 1 and "Traceback" not in unmigrated.stderr, unmigrated.stderr
    assert "run `python manage.py migrate` first" in unmigrated.stderr
    assert run_manage("migrate", "-v0", env=fresh).returncode == 0
    exported = run_manage("registry_export", env=fresh)
    assert exported.returncode == 0, exported.stderr
    assert '"servers": []' in exported.stdout
    probe = (
        "from django.conf import settings; "
        "print(settings.SECRET_KEY == (settings.VAR_DIR / 'secret-key.txt').read_text().strip())"
    )
    same = run_manage("shell", "-c", probe, env=fresh)
    assert same.stdout.split()[-1] == "True" and key_file.read_text().strip() == key  # generated once, then read


def test_check_deploy_says_when_the_generated_key_is_in_use(tmp_path):
    local = run_manage("check", "--deploy", env={"ORCHESTRATOR_VAR_DIR": str(tmp_path)})
    assert "orchestrator.W001" in local.stderr + local.stdout
    assert "SECRET_KEY is not set" in local.stderr + local.stdout
    # A key set in the environment wins (and the generated one is left alone).
    configured = run_manage(
        "check", "--deploy", env={"SECRET_KEY": secrets.token_urlsafe(50), "ORCHESTRATOR_VAR_DIR": str(tmp_path)}
    )
    assert "orchestrator.W001" not in configured.stderr + configured.stdout


def test_check_deploy_is_clean_when_configured_for_production(tmp_path):
    production = {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "orchestrator.example.com",
        "SECURE_SSL_REDIRECT": "1",
        "SECURE_HSTS_SECONDS": "31536000",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
        "SECURE_HSTS_PRELOAD": "1",
        "ORCHESTRATOR_VAR_DIR": str(tmp_path),
    }
    done = run_manage("check", "--deploy", "--fail-level", "WARNING", env=production)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_the_database_file_is_private(tmp_path):
    done = run_manage("migrate", "-v0", env={"DEBUG": "1", "ORCHESTRATOR_VAR_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    database = tmp_path / "orchestrator.sqlite3"
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o700
    for extra in (tmp_path / "orchestrator.sqlite3-wal", tmp_path / "orchestrator.sqlite3-shm"):
        if extra.exists():
            assert stat.S_IMODE(extra.stat().st_mode) & 0o077 == 0


@pytest.mark.django_db
def test_the_demo_never_changes_an_existing_users_password(settings, tmp_path):
    from orchestrator_site.demo import DEMO_USERNAME, demo_login

    settings.VAR_DIR = tmp_path
    User.objects.create_user(DEMO_USERNAME, password="the-owners-own-password")
    username, password = demo_login()
    user = User.objects.get(username=DEMO_USERNAME)
    assert user.check_password("the-owners-own-password")
    assert password is None  # nothing to print: the demo does not know it

    # A fresh installation still gets a generated password, kept for the next run.
    User.objects.all().delete()
    _, first = demo_login()
    _, second = demo_login()
    assert first and first == second and User.objects.get(username=DEMO_USERNAME).check_password(first)
