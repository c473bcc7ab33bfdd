"""Profiles: validation, the demo fleet's characters, overrides from flags and env."""

import pytest

from exchange_fleet.__main__ import build_parser, resolve_profile
from exchange_fleet.many import copy_ledger_path
from exchange_fleet.profiles import DEMO_FLEET, ExchangeProfile, overrides_from_env, profile_by_name


def test_demo_fleet_has_five_distinct_characters() -> None:
    assert [p.name for p in DEMO_FLEET] == ["alpha", "beta", "gamma", "delta", "epsilon"]
    alpha, beta, gamma, delta, epsilon = DEMO_FLEET
    assert alpha.price_bias == 0 and alpha.error_rate == 0 and not alpha.outage_windows
    assert 0.004 <= beta.price_bias <= 0.006
    assert gamma.base_latency_ms >= 100 and gamma.jitter_ms > 0
    assert delta.error_rate >= 0.1 and delta.outage_windows and delta.outage_period_s
    assert epsilon.transport == "streamable-http" and epsilon.http_port
    # One shared seed: the exchanges follow the same underlying market.
    assert len({p.seed for p in DEMO_FLEET}) == 1


def test_profile_by_name() -> None:
    assert profile_by_name("gamma").name == "gamma"
    with pytest.raises(ValueError, match="unknown exchange profile 'zeta'.*alpha"):
        profile_by_name("zeta")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": "Bad Name"}, "profile name"),
        ({"error_rate": 1.5}, "error_rate must be between 0.0 and 1.0"),
        ({"base_latency_ms": -1}, "base_latency_ms must be >= 0.0"),
        ({"jitter_ms": float("nan")}, "jitter_ms must be a finite number"),
        ({"symbols": ()}, "symbols must not be empty"),
        ({"symbols": ("BTCUSD",)}, "BASE-QUOTE"),
        ({"symbols": ("BTC-USD", "BTC-USD")}, "duplicates"),
        ({"outage_windows": ((5, 2),)}, "0 <= start < end"),
        ({"outage_windows": ((5, 70),), "outage_period_s": 60}, "fit inside one period"),
        ({"starting_balances": {"USD": -1}}, "starting_balances"),
        ({"taker_fee": 0.5}, "taker_fee"),
        ({"tick_interval_s": 0}, "tick_interval_s"),
        ({"http_port": 70000}, "http_port"),
        ({"seed": 1.5}, "seed must be an integer"),
        ({"lose_confirm_replies": -1}, "lose_confirm_replies must be an integer >= 0"),
        ({"lose_confirm_replies": 1.5}, "lose_confirm_replies must be an integer >= 0"),
        ({"ledger_path": " "}, "ledger_path must be a non-empty path"),
    ],
)
def test_validation_messages(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ExchangeProfile(**{"name": "x", **overrides})  # type: ignore[arg-type]


def test_outage_windows_one_shot_and_periodic() -> None:
    once = ExchangeProfile(name="x", outage_windows=((1.0, 2.0),))
    assert once.outage_remaining_s(0.5) is None
    assert once.outage_remaining_s(1.5) == pytest.approx(0.5)
    assert once.outage_remaining_s(61.5) is None
    periodic = once.with_overrides(outage_period_s=10.0)
    assert periodic.outage_remaining_s(31.25) == pytest.approx(0.75)
    assert periodic.outage_remaining_s(35.0) is None


def test_with_overrides_revalidates_and_rejects_unknown_fields() -> None:
    alpha = profile_by_name("alpha")
    assert alpha.with_overrides(base_latency_ms=200).base_latency_ms == 200
    assert alpha.base_latency_ms != 200  # frozen original untouched
    with pytest.raises(ValueError, match="error_rate"):
        alpha.with_overrides(error_rate=2)
    with pytest.raises(ValueError, match="unknown profile field"):
        alpha.with_overrides(colour="red")


def test_env_overrides() -> None:
    env = {
        "EXCHANGE_FLEET_LATENCY_MS": "200",
        "EXCHANGE_FLEET_ERROR_RATE": "0.25",
        "EXCHANGE_FLEET_OUTAGES": "5:10, 20:25",
        "EXCHANGE_FLEET_SEED": "9",
        "EXCHANGE_FLEET_PRICE_BIAS": "",
        "EXCHANGE_FLEET_LOSE_CONFIRM_REPLIES": "2",
        "EXCHANGE_FLEET_LEDGER_PATH": "/tmp/alpha-ledger.json",
        "UNRELATED": "1",
    }
    assert overrides_from_env(env) == {
        "base_latency_ms": 200.0,
        "error_rate": 0.25,
        "outage_windows": ((5.0, 10.0), (20.0, 25.0)),
        "seed": 9,
        "lose_confirm_replies": 2,
        "ledger_path": "/tmp/alpha-ledger.json",
    }
    with pytest.raises(ValueError, match="EXCHANGE_FLEET_JITTER_MS"):
        overrides_from_env({"EXCHANGE_FLEET_JITTER_MS": "lots"})
    with pytest.raises(ValueError, match="EXCHANGE_FLEET_LOSE_CONFIRM_REPLIES"):
        overrides_from_env({"EXCHANGE_FLEET_LOSE_CONFIRM_REPLIES": "1.5"})


def test_cli_flags_override_env_and_profile() -> None:
    args = build_parser().parse_args(
        ["serve", "--profile", "delta", "--latency-ms", "300", "--outage", "1:2", "--outage", "3:4", "--taker-fee", "0"]
    )
    profile = resolve_profile(args, {"EXCHANGE_FLEET_LATENCY_MS": "200", "EXCHANGE_FLEET_JITTER_MS": "7"})
    assert profile.base_latency_ms == 300  # flag beats env
    assert profile.jitter_ms == 7  # env beats profile
    assert profile.outage_windows == ((1.0, 2.0), (3.0, 4.0))
    assert profile.taker_fee == 0
    assert profile.error_rate == profile_by_name("delta").error_rate

    no_outages = resolve_profile(build_parser().parse_args(["serve", "--profile", "delta", "--no-outages"]), {})
    assert no_outages.outage_windows == () and no_outages.outage_period_s is None


def test_fault_and_ledger_knobs_come_from_flags_or_env() -> None:
    env = {"EXCHANGE_FLEET_LOSE_CONFIRM_REPLIES": "1", "EXCHANGE_FLEET_LEDGER_PATH": "from-env.json"}
    from_env = resolve_profile(build_parser().parse_args(["serve", "--profile", "alpha"]), env)
    assert (from_env.lose_confirm_replies, from_env.ledger_path) == (1, "from-env.json")
    flags = ["serve", "--profile", "alpha", "--lose-confirm-replies", "3", "--ledger-path", "from-flag.json"]
    from_flags = resolve_profile(build_parser().parse_args(flags), env)
    assert (from_flags.lose_confirm_replies, from_flags.ledger_path) == (3, "from-flag.json")
    assert profile_by_name("alpha").lose_confirm_replies == 0 and profile_by_name("alpha").ledger_path is None


def test_serve_many_gives_every_copy_its_own_ledger_file() -> None:
    assert copy_ledger_path("ledgers/alpha.json", 3) == "ledgers/alpha-3.json"
    assert copy_ledger_path(None, 3) is None


def test_profiles_are_hashable_and_compare_by_value() -> None:
    delta = profile_by_name("delta")
    assert {delta: 1}[delta.with_overrides()] == 1
    assert delta != delta.with_overrides(seed=1)


def test_to_dict_is_json_friendly() -> None:
    data = profile_by_name("delta").to_dict()
    assert data["outage_windows"] == [[20.0, 30.0]]
    assert data["symbols"] == ["BTC-USD", "ETH-USD", "SOL-USD"]
