"""tests/mcp_endpoint/module_database.py: a module fixture's `own_test_database()` uses pytest-django's test database
when the run has one, instead of creating a second one under it (on PostgreSQL the old check, Django's
`_get_test_db_name()` of the already-switched name, answered `test_test_<name>` and swapped databases under the
threads still connected to the first: /mcp/ then answered 401 for the module's tokens)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection

from tests.mcp_endpoint.module_database import CONFIGURED_NAME, own_test_database, switched_to_a_test_database

pytestmark = pytest.mark.django_db(transaction=True)


def test_under_pytest_djangos_test_database_it_sets_up_none_of_its_own():
    assert switched_to_a_test_database()
    test_database = connection.settings_dict["NAME"]
    assert test_database != CONFIGURED_NAME
    User.objects.create_user(username="before-the-module")
    with own_test_database():
        assert connection.settings_dict["NAME"] == test_database
        # The same database, not an empty new one: what was written before is there.
        assert User.objects.filter(username="before-the-module").exists()
        User.objects.create_user(username="inside-the-module")
    assert connection.settings_dict["NAME"] == test_database
    assert User.objects.filter(username="inside-the-module").exists()
