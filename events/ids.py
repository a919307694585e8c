"""An event's stable id: `webhook-id` on every delivery of it, `id` in GET /events."""

from __future__ import annotations

PREFIX = "evt_"


def event_id(number: int) -> str:
    return f"{PREFIX}{number}"


def event_number(text: str) -> int | None:
    digits = text.removeprefix(PREFIX)
    if not digits.isascii() or not digits.isdigit() or len(digits) > 18:
        return None
    return int(digits)
