"""How /mcp/ names the fleet's tools, prompts and resources (mcp_endpoint/naming.py): reversible, server-scoped."""

from __future__ import annotations

import logging

import pytest

from mcp_endpoint import naming


def test_a_scoped_name_splits_at_the_first_separator():
    assert naming.scoped_name("exchange-alpha", "get_quote") == "exchange-alpha__get_quote"
    assert naming.split_scoped_name("exchange-alpha__get_quote") == naming.ScopedName("exchange-alpha", "get_quote")
    # A tool whose own name has the separator keeps it.
    assert naming.split_scoped_name("srv__a__b") == naming.ScopedName("srv", "a__b")


@pytest.mark.parametrize("name", ["get_quote", "__get_quote", "srv__", "bad server__x", ""])
def test_a_name_without_a_server_part_is_not_scoped(name: str):
    assert naming.split_scoped_name(name) is None


def test_a_server_whose_name_has_the_separator_is_left_out_and_said_once(caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING, logger="mcp_endpoint.naming"):
        assert naming.addressable("plain-name_1") is True
        assert naming.addressable("two__parts") is False
        assert naming.addressable("two__parts") is False
    said = [record for record in caplog.records if "two__parts" in record.getMessage()]
    assert len(said) == 1 and "/mcp/servers/two__parts/" in said[0].getMessage()


@pytest.mark.parametrize(
    "uri",
    [
        "test://greeting",
        "file:///var/log/app.log",
        "quotes://BTC-USD?depth=5#top",
        "https://example.test/a%2Fb/c",
        "urn:isbn:0451450523",
    ],
)
def test_a_resource_uri_round_trips_exactly(uri: str):
    scoped = naming.scoped_uri("exchange-alpha", uri)
    assert scoped.startswith("mcp-orchestrator://exchange-alpha/")
    assert naming.split_scoped_uri(scoped) == naming.ScopedName("exchange-alpha", uri)


def test_a_template_expanded_by_the_client_is_the_servers_own_expansion():
    # What a client does with the listed template ({id} replaced by the encoded value) gives, after the server part,
    # exactly what it would have sent the server for the server's own template: values are not decoded again.
    own_template = "files://logs/{name}"
    listed = naming.scoped_uri("files", own_template)
    value = "a%2Fb"  # a client's encoding of "a/b" in a simple expansion
    requested = listed.replace("{name}", value)
    assert naming.split_scoped_uri(requested) == naming.ScopedName("files", own_template.replace("{name}", value))


@pytest.mark.parametrize(
    "uri", ["test://greeting", "mcp-orchestrator://", "mcp-orchestrator://srv", "mcp-orchestrator://bad srv/x"]
)
def test_a_uri_that_is_not_the_aggregates_is_not_split(uri: str):
    assert naming.split_scoped_uri(uri) is None
