"""`/inbox`: replies a person must read (not understood, or after the answer window), answered from the
same number and cleared when done."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime
from typing import Any

import asyncpg
from fastapi import APIRouter, Depends, Header, Query, Request

from api.deps import ServicesDep, StoreDep, require_api_key
from api.errors import ApiError
from api.outbound import send_for_staff
from api.schemas import Inbox
from api.validation import InvalidInput, clean_text, read_json
from db.store import Store
from db.views import message_view, reminder_view
from workflows.models import Purpose, SendRequest

router = APIRouter(prefix="/inbox", tags=["inbox"], dependencies=[Depends(require_api_key)])

LIMIT_DEFAULT, LIMIT_MAX = 50, 200
MAX_REPLY = 1600
MAX_IDEMPOTENCY_KEY = 200


async def inbox_items(store: Store, rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
    """Each waiting reply with its reminder and its conversation: three round trips for a page."""
    return [
        {
            "message": message_view(row),
            "reminder": reminder_view(reminder) if reminder is not None else None,
            "conversation": [message_view(m) for m in talk],
        }
        for row, reminder, talk in await store.inbox_context(rows)
    ]


def _cursor(after: tuple[datetime, int]) -> str:
    return base64.urlsafe_b64encode(json.dumps([after[0].isoformat(), after[1]]).encode()).decode()


def _after(cursor: str) -> tuple[datetime, int]:
    try:
        at, message_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(at), int(message_id)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError, RecursionError) as err:
        raise InvalidInput("cursor", "is not a cursor this API gave out") from err


@router.get("", response_model=Inbox)
async def list_inbox(
    store: StoreDep,
    limit: int = Query(LIMIT_DEFAULT, description=f"1 to {LIMIT_MAX}"),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
    order: str = Query("oldest", description="oldest (first waiting first) or newest"),
) -> dict[str, Any]:
    if not 1 <= limit <= LIMIT_MAX:
        raise InvalidInput("limit", f"must be between 1 and {LIMIT_MAX}")
    if order not in ("oldest", "newest"):
        raise InvalidInput("order", "must be oldest or newest")
    page = await store.inbox_page(
        limit=limit, after=_after(cursor) if cursor else None, newest_first=order == "newest"
    )
    body: dict[str, Any] = {
        "items": await inbox_items(store, page.rows),
        "count": await store.inbox_count(),
    }
    if page.next_after is not None:
        body["next_cursor"] = _cursor(page.next_after)
    return body


def message_number(message_id: str) -> int:
    if not message_id.isascii() or not message_id.isdigit() or len(message_id) > 18:
        raise ApiError(404, "unknown message id")
    return int(message_id)


async def inbound_message(store: Store, message_id: str) -> asyncpg.Record:
    row = await store.message(message_number(message_id))
    if row is None or row["direction"] != "inbound":
        raise ApiError(404, "unknown message id")
    return row


async def reply_to(services: ServicesDep, store: Store, row: asyncpg.Record, body: str, key: str) -> str:
    request = SendRequest(
        reminder_id=row["reminder_id"],
        contact_number=row["contact_number"],
        purpose=Purpose.STAFF_REPLY,
        key=key,
        body=body,
    )
    return await send_for_staff(
        await services.temporal(),
        store,
        services.settings,
        request,
        f"staff reply to {row['contact_number']}",
    )


@router.post("/{message_id}/reply")
async def reply(
    message_id: str,
    request: Request,
    services: ServicesDep,
    idempotency_key: str | None = Header(None, description="the same key sends the reply once"),
) -> dict[str, str]:
    """Texts the contact from the service's number; recorded in the conversation. `"done": false` keeps
    the reply in the inbox (by default answering it clears it)."""
    store = await services.store()
    data = await read_json(request)
    if not isinstance(data, dict):
        raise InvalidInput("body", "must be a JSON object")
    if data.get("body") is None:
        raise InvalidInput("body", "is required: the text to send")
    text = clean_text(data["body"], "body", MAX_REPLY).strip()
    if not text:
        raise InvalidInput("body", "must not be empty")
    done = data.get("done", True)
    if not isinstance(done, bool):
        raise InvalidInput("done", "must be true or false")
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
        raise InvalidInput("Idempotency-Key", f"must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    row = await inbound_message(store, message_id)
    key = f"staff:{row['id']}:{idempotency_key or uuid.uuid4().hex}"
    outcome = await reply_to(services, store, row, text, key)
    if done:
        await store.mark_done(row["id"])
    return {"message_id": str(row["id"]), "message": outcome}


@router.post("/{message_id}/done")
async def done(message_id: str, store: StoreDep) -> dict[str, str]:
    row = await inbound_message(store, message_id)
    cleared = await store.mark_done(row["id"])
    return {"message_id": str(row["id"]), "message": "done" if cleared else "was not in the inbox"}
