"""Rows as clients see them: a reminder as `GET /reminder/{id}` shows it, a message as `/messages` shows
it. Events carry the same shapes, made from the row the trigger saved (JSON: times as ISO 8601 text)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg

SYS_DT_FORMAT = "%Y-%m-%d %H:%M:%S"
# An asyncpg row, or a dict made from the JSON an event saved.
Row = asyncpg.Record | Mapping[str, Any]
_REMINDER_TIMES = ("appointment", "sent_at", "created_at", "updated_at", "deleted_at")
_MESSAGE_TIMES = ("at", "delivery_at", "claimed_at", "attention_done_at")


def _sys_dt(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime(SYS_DT_FORMAT) if value is not None else None


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def reminder_view(row: Row) -> dict[str, Any]:
    notify_times = list(row["notify_times"])
    return {
        "reminder_id": row["reminder_id"],
        "contact_number": row["contact_number"],
        "appt_user_dt": row["appt_user_dt"],
        "appt_sys_dt": _sys_dt(row["appointment"]),
        "notify_sys_dt": _sys_dt(notify_times[0]) if notify_times else None,
        "notify_sys_dts": [_sys_dt(t) for t in notify_times],
        "notify_windows": list(row["notify_windows"]),
        "location": row["location"],
        "participant": row["participant"],
        "timezone": row["timezone"],
        "language": row["language"],
        "reminder_sent": row["reminder_sent"],
        "will_attend": row["will_attend"],
        "confirm_sent": row["confirm_sent"],
        "status": "deleted" if row.get("deleted_at") is not None else row["status"],
        "segments": row["segments"],
        "reason": row["reason"],
        "delivery_status": row.get("delivery_status"),
        "sent_at": _iso(row.get("sent_at")),
    }


def message_view(row: Row) -> dict[str, Any]:
    return {
        "message_id": str(row["id"]),
        "reminder_id": row["reminder_id"],
        "contact_number": row["contact_number"],
        "direction": row["direction"],
        "body": row["body"],
        "provider_id": row["provider_id"],
        "at": _iso(row["at"]),
        "delivery_status": row["delivery_status"],
        "purpose": row["purpose"],
        "encoding": row["encoding"],
        "segments": row["segments"],
        "needs_attention": bool(row.get("needs_attention")) and row.get("attention_done_at") is None,
    }


def _parsed(data: Mapping[str, Any], times: tuple[str, ...]) -> dict[str, Any]:
    row = dict(data)
    for name in times:
        if isinstance(row.get(name), str):
            row[name] = datetime.fromisoformat(row[name])
    return row


def event_view(kind: str, at: datetime, data: Mapping[str, Any]) -> dict[str, Any]:
    """An event as it is POSTed and listed: the Standard Webhooks shape (type, timestamp, data)."""
    if kind.startswith("reminder."):
        row = _parsed(data, _REMINDER_TIMES)
        row["notify_times"] = [datetime.fromisoformat(t) for t in row.get("notify_times") or []]
        body = reminder_view(row)
    else:
        body = message_view(_parsed(data, _MESSAGE_TIMES))
    return {"type": kind, "timestamp": _iso(at), "data": body}
