"""A transaction request checked field by field: explicit orders, or an arbitrage opportunity to execute; its
idempotency key and the digest that tells a client's retry from another request under the same key."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from coordinator.arbitrage_workflow import SYMBOL
from coordinator.errors import RequestError
from coordinator.models import Operation, OperationKind
from registry.models import Capability, CapabilityKind

MAX_PARTICIPANTS = 10
KNOWN = {"participants", "arbitrage", "timeout_seconds", "max_slippage_bps", "protocol", "idempotency_key"}
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


def _saga_steps(raw: Any, errors: dict[str, list[str]]) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_PARTICIPANTS:
        errors["participants"] = [f"A list of 1 to {MAX_PARTICIPANTS} steps."]
        return []
    steps: list[dict[str, Any]] = []
    for index, step in enumerate(raw):
        where = f"participants.{index}"
        if not isinstance(step, Mapping) or set(step) - {"server", "action", "compensation"}:
            errors[where] = ['{"server", "action": {"tool", "arguments"}, "compensation": {"tool", "arguments"}}.']
            continue
        if not isinstance(step.get("server"), str) or not step["server"]:
            errors[f"{where}.server"] = ["A server name."]
        for part in ("action", "compensation"):
            call = step.get(part)
            if not isinstance(call, Mapping) or not isinstance(call.get("tool"), str) or not call["tool"]:
                errors[f"{where}.{part}"] = ['{"tool": <name>, "arguments": {...}}.']
            elif not isinstance(call.get("arguments", {}), Mapping):
                errors[f"{where}.{part}.arguments"] = ["Must be a JSON object."]
        steps.append({key: step.get(key) for key in ("server", "action", "compensation")})
    if not errors:
        offered = set(
            Capability.objects.filter(kind=CapabilityKind.TOOL, server__enabled=True).values_list(
                "server__name", "name"
            )
        )
        for index, step in enumerate(steps):
            for part in ("action", "compensation"):
                if (step["server"], step[part]["tool"]) not in offered:
                    errors[f"participants.{index}.{part}"] = [
                        f"{step['server']!r} does not offer {step[part]['tool']!r} (or is not enabled)."
                    ]
    return steps


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _orders_from_arbitrage(spec: Any, slippage_bps: float, errors: dict[str, list[str]]) -> list[dict[str, Any]]:
    if (
        not isinstance(spec, Mapping)
        or isinstance(spec.get("operation_id"), bool)
        or not isinstance(spec.get("operation_id"), int)
        or set(spec) - {"operation_id", "opportunity"}
    ):
        errors["arbitrage"] = ['{"operation_id": <an arbitrage analysis>, "opportunity": <its index, default 0>}.']
        return []
    operation = Operation.objects.filter(pk=spec["operation_id"], kind=OperationKind.ARBITRAGE).first()
    if operation is None:
        errors["arbitrage.operation_id"] = ["No such arbitrage analysis."]
        return []
    opportunities = (operation.result or {}).get("opportunities") or []
    index = spec.get("opportunity", 0)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(opportunities):
        errors["arbitrage.opportunity"] = [f"An index of one of its {len(opportunities)} opportunities."]
        return []
    chosen = opportunities[index]
    room = slippage_bps / 10_000
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


def parse_transaction(data: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(the orders, the parameters to store) or RequestError naming each bad field."""
    if not isinstance(data, Mapping):
        raise RequestError({"non_field_errors": ["The body must be a JSON object."]})
    errors: dict[str, list[str]] = {}
    for key in sorted(set(data) - KNOWN):
        errors[key] = [f"Unknown field; the fields are {', '.join(sorted(KNOWN))}."]
    timeout = data.get("timeout_seconds", 5.0)
    if not _finite(timeout) or not 0.1 <= timeout <= 60:
        errors["timeout_seconds"] = ["A number from 0.1 to 60."]
    slippage = data.get("max_slippage_bps", 10.0)
    if not _finite(slippage) or not 0 <= slippage <= 1_000:
        errors["max_slippage_bps"] = ["A number from 0 to 1000."]
        slippage = 10.0
    protocol = data.get("protocol", "two_phase")
    if protocol not in ("two_phase", "saga"):
        errors["protocol"] = ['"two_phase" (reserve, confirm or cancel) or "saga" (actions and compensations).']
        raise RequestError(errors)
    if ("participants" in data) == ("arbitrage" in data):
        errors["participants"] = ['Give "participants" (the orders) or "arbitrage" (an opportunity), one of them.']
        raise RequestError(errors)
    if protocol == "saga":
        if "arbitrage" in data:
            errors["arbitrage"] = ["An opportunity is executed two-phase, not as a saga."]
        steps = _saga_steps(data.get("participants"), errors)
        if errors:
            raise RequestError(errors)
        return steps, {"protocol": "saga", "steps": steps, "timeout_seconds": float(timeout)}
    orders: list[dict[str, Any]] = []
    if "arbitrage" in data:
        orders = _orders_from_arbitrage(data["arbitrage"], float(slippage), errors)
    else:
        raw = data["participants"]
        if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_PARTICIPANTS:
            errors["participants"] = [f"A list of 1 to {MAX_PARTICIPANTS} orders."]
            raw = []
        for index, order in enumerate(raw):
            where = f"participants.{index}"
            if not isinstance(order, Mapping):
                errors[where] = ['{"server", "symbol", "side": "buy"|"sell", "quantity", "limit_price"?}.']
                continue
            if not isinstance(order.get("server"), str) or not order["server"]:
                errors[f"{where}.server"] = ["A server name."]
            if not isinstance(order.get("symbol"), str) or not SYMBOL.match(order["symbol"]):
                errors[f"{where}.symbol"] = ["A symbol of the form BASE-QUOTE."]
            if order.get("side") not in ("buy", "sell"):
                errors[f"{where}.side"] = ['"buy" or "sell".']
            quantity = order.get("quantity")
            if not _finite(quantity) or quantity <= 0:
                errors[f"{where}.quantity"] = ["A number greater than 0."]
            limit = order.get("limit_price")
            if limit is not None and (not _finite(limit) or limit <= 0):
                errors[f"{where}.limit_price"] = ["A number greater than 0, or null."]
            unknown = set(order) - {"server", "symbol", "side", "quantity", "limit_price"}
            if unknown:
                errors[f"{where}.{sorted(unknown)[0]}"] = ["Unknown field."]
            orders.append(dict(order))
    if not errors:
        able = set(
            Capability.objects.filter(kind=CapabilityKind.TOOL, name="reserve_order", server__enabled=True).values_list(
                "server__name", flat=True
            )
        )
        for index, order in enumerate(orders):
            if order["server"] not in able:
                errors[f"participants.{index}.server"] = [
                    f"{order['server']!r} is not an enabled server offering reserve_order/confirm_order/cancel_order."
                ]
    if errors:
        raise RequestError(errors)
    parameters = {"orders": orders, "timeout_seconds": float(timeout), "max_slippage_bps": float(slippage)}
    if "arbitrage" in data:
        # Spelled out (the default index too): the transaction's claim on the opportunity is made from these.
        parameters["arbitrage"] = {
            "operation_id": data["arbitrage"]["operation_id"],
            "opportunity": data["arbitrage"].get("opportunity", 0),
        }
    return orders, parameters
