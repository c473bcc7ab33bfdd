"""How each server is checked: the defaults from settings, tuned per server in its metadata (`health`), which the
registry's one validation path has already checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from health.damping import DampingPolicy


@dataclass(frozen=True)
class SyntheticCheck:
    tool: str
    arguments: dict[str, Any] = field(default_factory=dict)
    expect: dict[str, Any] | None = None
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class CheckConfig:
    server_id: int
    name: str
    interval_seconds: float
    policy: DampingPolicy
    synthetic: SyntheticCheck | None = None
    server_type: str = ""
    tags: tuple[str, ...] = ()


def check_config(
    *, server_id: int, name: str, metadata: Any, server_type: str = "", tags: tuple[str, ...] = ()
) -> CheckConfig:
    health = metadata.get("health", {}) if isinstance(metadata, dict) else {}
    synthetic = health.get("synthetic")
    return CheckConfig(
        server_id=server_id,
        name=name,
        interval_seconds=float(health.get("interval_seconds", settings.HEALTH_CHECK_INTERVAL_SECONDS)),
        policy=DampingPolicy(
            retries=int(health.get("retries", settings.HEALTH_RETRIES)),
            recover_after=int(health.get("recover_after", settings.HEALTH_RECOVER_AFTER)),
            latency_target_ms=float(health.get("latency_target_ms", settings.HEALTH_LATENCY_TARGET_MS)),
        ),
        synthetic=SyntheticCheck(
            tool=synthetic["tool"],
            arguments=dict(synthetic.get("arguments") or {}),
            expect=synthetic.get("expect"),
            timeout_seconds=float(synthetic.get("timeout_seconds", settings.HEALTH_CHECK_TIMEOUT_SECONDS)),
        )
        if isinstance(synthetic, dict)
        else None,
        server_type=server_type,
        tags=tags,
    )
