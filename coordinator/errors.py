"""The one error a coordinator request answers when it cannot run: each bad field named (a 400)."""

from __future__ import annotations


class RequestError(ValueError):
    """Field -> messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{key}: {' '.join(value)}" for key, value in errors.items()))
        self.errors = errors
