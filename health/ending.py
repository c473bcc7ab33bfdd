"""Ending a silence or a maintenance window now ("End now" in the dashboard and the API's `end` actions).

The server's clock decides "now", not the browser's. Only what is in force can be ended: an upcoming silence or
window is deleted instead (ending it would leave a zero-length row that reads as history). The rows ended here are
the ones alerting and health read (`alerting.active_silences`, the monitor's open windows): there is no second
state to keep in step.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from health.models import MaintenanceWindow, Recurrence, Silence


class NotInForce(Exception):
    """The silence or window is not in force now, so there is nothing to end (the message says what to do)."""


def silence_end(*, silence: Silence, now: datetime | None = None) -> Silence:
    now = now or timezone.now()
    if silence.ends_at <= now:
        raise NotInForce("this silence has already ended")
    if silence.starts_at > now:
        raise NotInForce("this silence has not started yet: delete it instead")
    silence.ends_at = max(now, silence.starts_at + timedelta(microseconds=1))
    silence.save(update_fields=["ends_at"])
    return silence


def maintenance_window_end(*, window: MaintenanceWindow, now: datetime | None = None) -> MaintenanceWindow:
    """End an open window now. A repeating window ends for good: its length is what each repeat lasts, so
    shortening it would change every later repeat; ending it stops the repeats too (a new window plans the next)."""
    now = now or timezone.now()
    if not window.is_open(now):
        if window.starts_at > now:
            raise NotInForce("this window has not started yet: delete it instead")
        raise NotInForce("this window is not open now" if window.recurrence != Recurrence.NONE else "already ended")
    window.recurrence = Recurrence.NONE
    window.ends_at = max(now, window.starts_at + timedelta(microseconds=1))
    window.save(update_fields=["recurrence", "ends_at"])
    return window
