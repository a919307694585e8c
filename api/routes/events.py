"""`/events`: the events a receiver gets, for one catching up (`since` the last id it has)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Query

from api.deps import StoreDep, require_api_key
from api.schemas import EventList
from api.validation import InvalidInput
from db.views import event_view
from events.ids import event_id, event_number

router = APIRouter(tags=["events"], dependencies=[Depends(require_api_key)])

LIMIT_DEFAULT, LIMIT_MAX = 100, 1000


@router.get("/events", response_model=EventList)
async def list_events(
    store: StoreDep,
    since: str | None = Query(None, description="an event id (evt_...): the events after it"),
    limit: int = Query(LIMIT_DEFAULT, description=f"1 to {LIMIT_MAX}"),
    reminder_id: str | None = Query(None, description="only this reminder's events"),
) -> dict[str, Any]:
    if not 1 <= limit <= LIMIT_MAX:
        raise InvalidInput("limit", f"must be between 1 and {LIMIT_MAX}")
    after = event_number(since) if since is not None else None
    if after is None and since is not None:
        raise InvalidInput("since", "must be an event id this API gave out (evt_ and digits)")
    if reminder_id is not None and (
        len(reminder_id) != 32 or not reminder_id.isalnum() or not reminder_id.isascii()
    ):
        raise InvalidInput("reminder_id", "must be a reminder id")
    rows = await store.list_events(since=after, limit=limit, reminder_id=reminder_id)
    events = [
        {"id": event_id(r["id"]), **event_view(r["type"], r["at"], json.loads(r["data"]))} for r in rows
    ]
    body: dict[str, Any] = {"events": events}
    if rows:
        body["next_since"] = event_id(rows[-1]["id"])
    return body
