"""A transaction request declared as serializers (the OpenAPI schema shows them) and checked field by field:
explicit orders or saga steps, or an arbitrage opportunity to execute; its idempotency key and the digest that
tells a client's retry from another request under the same key."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from coordinator.arbitrage_workflow import SYMBOL
from coordinator.errors import RequestError
from coordinator.models import Operation, OperationKind
from coordinator.opportunity_checks import (
    DEFAULT_MAX_AGE_SECONDS,
    MAX_AGE_LIMIT_SECONDS,
    default_max_age_seconds,
    quoted_at,
)
from registry.models import Capability, CapabilityKind
from registry.request_bodies import (
    JsonBody,
    JsonIntegerField,
    JsonNumberField,
    JsonObjectField,
    JsonTextField,
    literal,
    one_message,
    plain_errors,
)

MAX_PARTICIPANTS = 10
KEY_FIELD = "idempotency_key"
KEY_HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 200
# Visible ASCII only: a key is compared byte for byte and shown back, so no spaces, controls or look-alikes.
_KEY = re.compile(rf"[\x21-\x7e]{{1,{MAX_KEY_LENGTH}}}")


def idempotency_key_of(header: str | None, data: Any) -> str | None:
    """The request's idempotency key, from the Idempotency-Key header or the body's field (None: no key)."""
    field = data.get(KEY_FIELD) if isinstance(data, Mapping) else None
    if header is not None and field is not None and header != field:
        raise RequestError({KEY_FIELD: [f"The {KEY_HEADER} header and the {KEY_FIELD} field differ; give one."]})
    key = header if header is not None else field
    if key is None:
        return None
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise RequestError(
            {KEY_FIELD: [f"1 to {MAX_KEY_LENGTH} visible ASCII characters, no spaces (a random UUID will do)."]}
        )
    return key


def _canonical(value: Any) -> Any:
    # JSON has one number type: a client that re-serialises 5 as 5.0 sends the same request.
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, Mapping):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    return value


def request_digest(data: Any) -> str:
    """SHA-256 of the body as canonical JSON, its key left out: a retry sent with other spacing, key order or
    number spelling is the same request; any other value is not."""
    if hasattr(data, "dict"):  # a form body (QueryDict): its plain values
        data = data.dict()
    if isinstance(data, Mapping):
        data = {key: value for key, value in data.items() if key != KEY_FIELD}
    canonical = json.dumps(_canonical(data), sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


ORDER_SHAPE = '{"server", "symbol", "side": "buy"|"sell", "quantity", "limit_price"?}.'
STEP_SHAPE = '{"server", "action": {"tool", "arguments"}, "compensation": {"tool", "arguments"}}.'
CALL_SHAPE = '{"tool": <name>, "arguments": {...}}.'
ARBITRAGE_SHAPE = (
    '{"operation_id": <an arbitrage analysis>, "opportunity": <its index, default 0>, "max_age_seconds"?}.'
)


def _every_way_wrong(message: str) -> dict[str, str]:
    return one_message(message, ("invalid", "invalid_choice"))


class TransactionBody(JsonBody):
    """A part of a transaction request: read as sent, so null, "", [] and {} are checked like any other value."""

    empty_means_default = False


class OrderSerializer(TransactionBody):
    """One participant of a two-phase transaction: the order reserved on its server."""

    default_error_messages = {"invalid": literal(ORDER_SHAPE)}
    unknown_message = "Unknown field."
    server = JsonTextField(allow_blank=False, message="A server name.")
    symbol = JsonTextField(allow_blank=False, pattern=SYMBOL, message="A symbol of the form BASE-QUOTE.")
    side = serializers.ChoiceField(choices=("buy", "sell"), error_messages=_every_way_wrong('"buy" or "sell".'))
    quantity = JsonNumberField(message="A number greater than 0.")
    limit_price = JsonNumberField(required=False, allow_null=True, message="A number greater than 0, or null.")

    def validate_quantity(self, quantity: float) -> float:
        if quantity <= 0:
            raise serializers.ValidationError("A number greater than 0.")
        return quantity

    def validate_limit_price(self, limit: float | None) -> float | None:
        if limit is not None and limit <= 0:
            raise serializers.ValidationError("A number greater than 0, or null.")
        return limit


class SagaCallSerializer(TransactionBody):
    """A saga step's tool call; compensation arguments may name "$result.<field>" of the action's result."""

    default_error_messages = {"invalid": literal(CALL_SHAPE)}
    tool = JsonTextField(allow_blank=False, max_length=300, message=CALL_SHAPE)
    arguments = JsonObjectField(required=False, default=dict, message="Must be a JSON object.")


class SagaStepSerializer(TransactionBody):
    """One participant of a saga: an action on its server and the compensation that undoes it."""

    default_error_messages = {"invalid": literal(STEP_SHAPE)}
    server = JsonTextField(allow_blank=False, message="A server name.")
    action = SagaCallSerializer(error_messages=_every_way_wrong(CALL_SHAPE))
    compensation = SagaCallSerializer(error_messages=_every_way_wrong(CALL_SHAPE))


class ArbitrageChoiceSerializer(TransactionBody):
    """An opportunity of an arbitrage analysis to execute."""

    # validated_data gains "chosen": the opportunity itself, read from the analysis.

    default_error_messages = {"invalid": literal(ARBITRAGE_SHAPE)}
    operation_id = JsonIntegerField(message=ARBITRAGE_SHAPE)
    opportunity = JsonIntegerField(required=False, default=0, message="An index of one of its opportunities.")
    max_age_seconds = JsonNumberField(
        required=False,
        default=None,
        min_value=0.1,
        max_value=MAX_AGE_LIMIT_SECONDS,
        help_text=(
            "Refuse (409, reason stale) when the older of the opportunity's two quotes is older than this; default "
            f"the setting COORDINATOR_EXECUTE_MAX_AGE_SECONDS ({DEFAULT_MAX_AGE_SECONDS:g} s unless set)."
        ),
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        operation = Operation.objects.filter(pk=attrs["operation_id"], kind=OperationKind.ARBITRAGE).first()
        if operation is None:
            raise serializers.ValidationError({"operation_id": ["No such arbitrage analysis."]})
        opportunities = (operation.result or {}).get("opportunities") or []
        if not 0 <= attrs["opportunity"] < len(opportunities):
            raise serializers.ValidationError(
                {"opportunity": [f"An index of one of its {len(opportunities)} opportunities."]}
            )
        chosen = opportunities[attrs["opportunity"]]
        max_age = attrs.get("max_age_seconds") or default_max_age_seconds()
        return attrs | {
            "chosen": chosen,
            "quoted_at": quoted_at(operation.result or {}, chosen),
            "max_age_seconds": max_age,
        }


@extend_schema_field(
    PolymorphicProxySerializer(
        component_name="TransactionParticipants",
        serializers=[OrderSerializer, SagaStepSerializer],
        resource_type_field_name=None,
        many=True,
    )
)
class ParticipantsField(serializers.JSONField):
    """Orders (two_phase) or steps (saga): the protocol says which, so the body's validate() reads them."""


def _listed(serializer_class: type[TransactionBody], raw: Any, what: str) -> list[dict[str, Any]]:
    message = f"A list of 1 to {MAX_PARTICIPANTS} {what}."
    items = serializer_class(
        data=raw,
        many=True,
        min_length=1,
        max_length=MAX_PARTICIPANTS,
        error_messages={code: message for code in ("not_a_list", "empty", "min_length", "max_length")},
    )
    if not items.is_valid():
        raise serializers.ValidationError({"participants": items.errors})
    return [dict(item) for item in items.validated_data]


def _orders_from(arbitrage: Mapping[str, Any], slippage_bps: float) -> list[dict[str, Any]]:
    chosen, room = arbitrage["chosen"], slippage_bps / 10_000
    # Limits a little worse than the analysed prices: the market moves between the analysis and the reservation.
    return [
        {
            "server": chosen["buy_on"],
            "symbol": chosen["symbol"],
            "side": "buy",
            "quantity": chosen["size"],
            "limit_price": round(chosen["buy_price"] * (1 + room), 8),
        },
        {
            "server": chosen["sell_on"],
            "symbol": chosen["symbol"],
            "side": "sell",
            "quantity": chosen["size"],
            "limit_price": round(chosen["sell_price"] * (1 - room), 8),
        },
    ]


def _saga_plan(attrs: Mapping[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    if "arbitrage" in attrs:
        raise serializers.ValidationError({"arbitrage": ["An opportunity is executed two-phase, not as a saga."]})
    steps = [
        {"server": step["server"], "action": dict(step["action"]), "compensation": dict(step["compensation"])}
        for step in _listed(SagaStepSerializer, attrs["participants"], "steps")
    ]
    offered = set(
        Capability.objects.filter(kind=CapabilityKind.TOOL, server__enabled=True).values_list("server__name", "name")
    )
    unoffered = {
        f"participants.{index}.{part}": [
            f"{step['server']!r} does not offer {step[part]['tool']!r} (or is not enabled)."
        ]
        for index, step in enumerate(steps)
        for part in ("action", "compensation")
        if (step["server"], step[part]["tool"]) not in offered
    }
    if unoffered:
        raise serializers.ValidationError(unoffered)
    return steps, {"protocol": "saga", "steps": steps, "timeout_seconds": attrs["timeout_seconds"]}


def _two_phase_plan(attrs: Mapping[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    slippage = attrs["max_slippage_bps"]
    if "arbitrage" in attrs:
        orders = _orders_from(attrs["arbitrage"], slippage)
    else:
        orders = _listed(OrderSerializer, attrs["participants"], "orders")
    able = set(
        Capability.objects.filter(kind=CapabilityKind.TOOL, name="reserve_order", server__enabled=True).values_list(
            "server__name", flat=True
        )
    )
    unable = {
        f"participants.{index}.server": [
            f"{order['server']!r} is not an enabled server offering reserve_order/confirm_order/cancel_order."
        ]
        for index, order in enumerate(orders)
        if order["server"] not in able
    }
    if unable:
        raise serializers.ValidationError(unable)
    parameters = {"orders": orders, "timeout_seconds": attrs["timeout_seconds"], "max_slippage_bps": slippage}
    if "arbitrage" in attrs:
        # Spelled out (the default index too): the transaction's claim on the opportunity is made from these. The
        # analysed figures go with them, so the transaction's page compares what it realised with what was expected
        # without reading the analysis again.
        arbitrage, chosen = attrs["arbitrage"], attrs["arbitrage"]["chosen"]
        parameters["arbitrage"] = {
            **{key: arbitrage[key] for key in ("operation_id", "opportunity", "quoted_at", "max_age_seconds")},
            **{key: chosen.get(key) for key in ("symbol", "buy_on", "sell_on", "size", "buy_price", "sell_price")},
            "expected_net_profit": chosen.get("net_profit"),
            "expected_net_bps": chosen.get("net_bps"),
        }
    return orders, parameters


class TransactionRequestSerializer(TransactionBody):
    """A transaction to run: its participants (orders two-phase, or a saga's steps), or an analysed arbitrage
    opportunity to execute two-phase. 400 names each bad field by its path (participants.0.side)."""

    # validated_data gains "orders" (the participants to run) and "parameters" (what the transaction stores).

    participants = ParticipantsField(
        required=False,
        help_text="two_phase: 1 to 10 orders; saga: 1 to 10 steps (action and compensation).",
    )
    arbitrage = ArbitrageChoiceSerializer(required=False, help_text="Executed two-phase; instead of participants.")
    timeout_seconds = JsonNumberField(
        required=False, default=5.0, min_value=0.1, max_value=60, message=("A number from 0.1 to 60.")
    )
    max_slippage_bps = JsonNumberField(
        required=False, default=10.0, min_value=0, max_value=1_000, message="A number from 0 to 1000."
    )
    protocol = serializers.ChoiceField(
        choices=("two_phase", "saga"),
        required=False,
        default="two_phase",
        error_messages=_every_way_wrong(
            '"two_phase" (reserve, confirm or cancel) or "saga" (actions and compensations).'
        ),
    )
    idempotency_key = JsonTextField(
        required=False,
        max_length=MAX_KEY_LENGTH,
        help_text=f"Instead of the {KEY_HEADER} header (checked by idempotency_key_of before the body).",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("participants" in attrs) == ("arbitrage" in attrs):
            raise serializers.ValidationError(
                {"participants": ['Give "participants" (the orders) or "arbitrage" (an opportunity), one of them.']}
            )
        plan = _saga_plan if attrs["protocol"] == "saga" else _two_phase_plan
        attrs["orders"], attrs["parameters"] = plan(attrs)
        return attrs


def parse_transaction(data: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(the orders, the parameters to store) or RequestError naming each bad field."""
    body = TransactionRequestSerializer(data=data)
    if not body.is_valid():
        raise RequestError(plain_errors(body.errors))
    return body.validated_data["orders"], body.validated_data["parameters"]
