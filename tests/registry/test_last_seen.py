"""'Last seen' moves forward to the latest successful request, never backwards, for many servers at once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from registry.models import Server
from registry.services import server_create, servers_seen_record

pytestmark = pytest.mark.django_db


def test_last_seen_moves_forward_only_for_every_server_in_the_batch():
    now = timezone.now().replace(microsecond=123456)
    servers = [server_create(name=f"s{i}", transport="http", url=f"http://127.0.0.1:9/{i}") for i in range(3)]
    Server.objects.filter(pk=servers[1].pk).update(last_seen_at=now + timedelta(minutes=5))
    Server.objects.filter(pk=servers[2].pk).update(last_seen_at=now - timedelta(minutes=5))

    servers_seen_record({"s0": now, "s1": now, "s2": now, "unknown": now})

    seen = dict(Server.objects.values_list("name", "last_seen_at"))
    assert seen["s0"] == now  # was never seen: set, to the microsecond
    assert seen["s1"] == now + timedelta(minutes=5)  # newer already: kept
    assert seen["s2"] == now  # older: moved forward
    servers_seen_record({"s0": now - timedelta(seconds=1)}, {"s0": servers[0].pk})
    assert Server.objects.get(name="s0").last_seen_at == now  # never backwards
