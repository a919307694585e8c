"""`/reminder`: create, read, list and delete reminders (the seed's API, plus status and messages)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.texts import Texts
from api.csv import CSV_FIELDS, csv_cell, csv_line
from api.dates import parse_range, zone_or
from api.deps import ServicesDep, SettingsDep, StoreDep, TemporalDep, require_api_key
from api.errors import ApiError, Unavailable
from api.metrics import CREATED, DELETED
from api.schemas import (
    CHANGE_REMINDER_BODY,
    CREATE_REMINDER_BODY,
    CreatedReminder,
    DeletedReminder,
    MessageList,
    Reminder,
    ReminderChange,
    ReminderList,
    ReminderRequest,
)
from api.starts import start_reminder
from api.validation import InvalidInput, NewReminder, read_json
from db.views import message_view, reminder_view
from rules.segments import Encoding, encoding_of
from stack.codec import contact_search_value
from workflows.models import (
    Purpose,
    ReminderInput,
    ReminderState,
    Reschedule,
    Status,
    initial_state,
    workflow_id,
)
from workflows.reminder import ReminderWorkflow

log = logging.getLogger("reminders.api")
router = APIRouter(prefix="/reminder", tags=["reminders"], dependencies=[Depends(require_api_key)])

LIST_LIMIT_DEFAULT = 100
LIST_LIMIT_MAX = 1000
LISTED_STATUSES = sorted(s.value for s in Status if s is not Status.DELETED)
MAX_IDEMPOTENCY_KEY = 200
# Reminder ids made from an Idempotency-Key: the same key always names the same reminder.
IDEMPOTENCY_NAMESPACE = uuid.UUID("5d0c7d1e-3f2a-4b8e-9c61-2f6e1b4a9d70")
# Anything else (a NUL, a lone surrogate) would reach PostgreSQL only to fail there as a 500.
REMINDER_ID = re.compile(r"[0-9a-f]{32}")
CONTACT_FILTER = re.compile(r"[0-9]{1,15}")


# A reminder text longer than this many segments costs enough to say so at create.
SEGMENTS_WARNING = 2


def reminder_segments(
    texts: Texts,
    appt_user_dt: str,
    location: str | None,
    participant: str | None,
    language: str | None,
    reminder_id: str,
) -> int:
    """The segments of the reminder's own text (the first text to a number adds the opt-out line); over
    SEGMENTS_WARNING a warning names the field that makes it long."""

    def cost(loc: str | None, who: str | None) -> Encoding:
        text = texts.render(
            Purpose.REMINDER, appt_user_dt=appt_user_dt, location=loc, participant=who, language=language
        )
        return encoding_of(texts.finish(text, Purpose.REMINDER, first_to_number=False))

    full = cost(location, participant)
    if full.segments > SEGMENTS_WARNING:
        culprits = [
            name
            for name, without in (
                ("location", cost(None, participant)),
                ("participant", cost(location, None)),
            )
            if without.segments < full.segments
        ]
        log.warning(
            "reminder %s: its text takes %d %s segments; %s makes it long",
            reminder_id,
            full.segments,
            full.encoding,
            " and ".join(culprits) or "the message template",
            extra={"reminder_id": reminder_id},
        )
    return full.segments


@router.post("", response_model=CreatedReminder, openapi_extra=CREATE_REMINDER_BODY)
async def create_reminder(
    request: Request,
    services: ServicesDep,
    settings: SettingsDep,
    idempotency_key: str | None = Header(
        None, description="the same key with the same body creates one reminder however often it is sent"
    ),
) -> dict[str, str]:
    return await create_from(await read_json(request), services, idempotency_key)


@dataclass(frozen=True, slots=True)
class NewCreate:
    """A create validated and keyed, nothing made yet: its workflow's input, its first row, the hash of the
    request an Idempotency-Key binds it to, and its text's segments."""

    inp: ReminderInput
    state: ReminderState
    request_hash: str | None
    segments: int


def prepare_create(body: Any, services: ServicesDep, idem: str | None) -> NewCreate:
    """Reads one create's body; raises the InvalidInput naming a field it breaks. Changes nothing."""
    settings = services.settings
    new: NewReminder = ReminderRequest.read(body, quiet=settings.quiet)
    request_hash = None
    reminder_id = None
    if idem is not None:
        reminder_id = uuid.uuid5(IDEMPOTENCY_NAMESPACE, idem).hex
        request_hash = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    inp = new.to_input(reminder_id)
    if settings.payload_encryption_key:
        inp.contact_search = contact_search_value(settings.payload_encryption_key, inp.contact_number)
    segments = reminder_segments(
        services.texts, inp.appt_user_dt, inp.location, inp.participant, inp.language, inp.reminder_id
    )
    return NewCreate(inp, initial_state(inp), request_hash, segments)


def created(reminder_id: str) -> None:
    CREATED.inc()
    log.info("created reminder %s", reminder_id, extra={"reminder_id": reminder_id})


def check_idempotency_key(idem: str | None) -> None:
    if idem is not None and not 1 <= len(idem) <= MAX_IDEMPOTENCY_KEY:
        raise InvalidInput("Idempotency-Key", f"must be 1 to {MAX_IDEMPOTENCY_KEY} characters")


async def create_from(body: Any, services: ServicesDep, idem: str | None) -> dict[str, str]:
    check_idempotency_key(idem)
    new = prepare_create(body, services, idem)
    inp = new.inp
    store = await services.store()
    temporal = await services.temporal()
    made, held_hash = await store.insert_new(new.state, new.request_hash, new.segments)
    if not made and held_hash != new.request_hash:
        raise ApiError(409, "Idempotency-Key was already used with a different body")
    try:
        await start_reminder(temporal, inp, services.settings.task_queue, new.state)
    except WorkflowAlreadyStartedError:
        pass
    except (RPCError, RuntimeError) as err:
        log.warning("could not start reminder %s: %s", inp.reminder_id, err)
        if made:
            await store.forget(inp.reminder_id)
        raise Unavailable("Temporal") from err
    if made:
        created(inp.reminder_id)
    return {
        "reminder_id": inp.reminder_id,
        "message": f"Successfully created a reminder with id {inp.reminder_id}.",
    }


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        appointment, reminder_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        after = datetime.fromisoformat(appointment), str(reminder_id)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError, RecursionError) as err:
        raise InvalidInput("cursor", "is not a cursor this API gave out") from err
    if not REMINDER_ID.fullmatch(after[1]):
        raise InvalidInput("cursor", "is not a cursor this API gave out")
    return after


def _encode_cursor(after: tuple[datetime, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps([after[0].isoformat(), after[1]]).encode()).decode()


@router.get(
    "",
    response_model=ReminderList,
    responses={200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with Accept: text/csv"}},
)
async def list_reminders(
    store: StoreDep,
    settings: SettingsDep,
    limit: int = Query(LIST_LIMIT_DEFAULT, description=f"1 to {LIST_LIMIT_MAX}"),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
    status: str | None = Query(None, description=", ".join(LISTED_STATUSES)),
    contact_number: str | None = Query(None, description="digits, as the API returns them"),
    start: str | None = Query(
        None, alias="from", description="appointments from: an ISO 8601 instant, or a date in `timezone`"
    ),
    end: str | None = Query(None, alias="to", description="appointments to (a date includes that whole day)"),
    timezone: str | None = Query(
        None, description="the zone of `from` and `to` dates (default ORG_TIMEZONE)"
    ),
    accept: str | None = Header(None),
) -> Any:
    if not 1 <= limit <= LIST_LIMIT_MAX:
        raise InvalidInput("limit", f"must be between 1 and {LIST_LIMIT_MAX}")
    if status is not None and status not in LISTED_STATUSES:
        raise InvalidInput("status", f"must be one of {', '.join(LISTED_STATUSES)}")
    if contact_number is not None:
        contact_number = contact_number.strip().lstrip("+")
        if not CONTACT_FILTER.fullmatch(contact_number):
            raise InvalidInput("contact_number", "must be the digits of a contact number")
    span = parse_range(start, end, zone_or(timezone, settings.org_timezone))
    filters: dict[str, Any] = {
        "status": status,
        "contact_number": contact_number,
        "appointment_from": span.start,
        "appointment_to": span.end,
    }
    after = _decode_cursor(cursor) if cursor else None
    if accept is not None and "text/csv" in accept:
        # The whole selection, page by page: an export is every row, not the first page.
        return StreamingResponse(
            csv_rows(store, filters, after),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": 'attachment; filename="reminders.csv"'},
        )
    page = await store.list_page(limit=limit, after=after, **filters)
    body: dict[str, Any] = {"reminders": [reminder_view(r) for r in page.rows]}
    if page.next_after is not None:
        body["next_cursor"] = _encode_cursor(page.next_after)
    return body


async def csv_rows(
    store: StoreDep, filters: dict[str, Any], after: tuple[datetime, str] | None
) -> AsyncIterator[str]:
    yield csv_line(CSV_FIELDS)
    while True:
        page = await store.list_page(limit=LIST_LIMIT_MAX, after=after, **filters)
        for row in page.rows:
            view = reminder_view(row)
            yield csv_line([csv_cell(view[name]) for name in CSV_FIELDS])
        if page.next_after is None:
            return
        after = page.next_after


async def _existing(store: StoreDep, reminder_id: str) -> asyncpg.Record:
    row = await store.get(reminder_id) if REMINDER_ID.fullmatch(reminder_id) else None
    if row is None:
        raise ApiError(404, "unknown reminder id")
    return row


@router.get("/{reminder_id}", response_model=Reminder)
async def get_reminder(reminder_id: str, store: StoreDep) -> dict[str, Any]:
    return reminder_view(await _existing(store, reminder_id))


@router.get("/{reminder_id}/messages", response_model=MessageList)
async def get_messages(reminder_id: str, store: StoreDep) -> dict[str, Any]:
    await _existing(store, reminder_id)
    return {"messages": [message_view(m) for m in await store.messages(reminder_id)]}


@router.patch("/{reminder_id}", response_model=Reminder, openapi_extra=CHANGE_REMINDER_BODY)
async def change_reminder(
    reminder_id: str, request: Request, store: StoreDep, temporal: TemporalDep, services: ServicesDep
) -> dict[str, Any]:
    """Reschedules or edits a reminder that is still open; absent fields keep their value."""
    return await apply_change(reminder_id, await read_json(request), services)


async def apply_change(reminder_id: str, data: Any, services: ServicesDep) -> dict[str, Any]:
    store, temporal = await services.store(), await services.temporal()
    current = await _existing(store, reminder_id)
    change: Reschedule = ReminderChange.read(data, current=current, quiet=services.settings.quiet)
    handle = temporal.get_workflow_handle_for(ReminderWorkflow.run, workflow_id(reminder_id))
    try:
        state = await handle.execute_update(ReminderWorkflow.reschedule, change)
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.type == "InvalidChange":
            raise ApiError(400, cause.message) from err
        raise ApiError(
            409, cause.message if isinstance(cause, ApplicationError) else "reminder is closed"
        ) from err
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(409, "the reminder is closed") from err
        raise
    await store.upsert_state(state)
    await store.set_segments(
        reminder_id,
        reminder_segments(
            services.texts, state.appt_user_dt, state.location, state.participant, state.language, reminder_id
        ),
    )
    log.info("rescheduled reminder %s", reminder_id, extra={"reminder_id": reminder_id})
    return reminder_view(await _existing(store, reminder_id))


@router.delete("/{reminder_id}", response_model=DeletedReminder)
async def delete_reminder(reminder_id: str, store: StoreDep, temporal: TemporalDep) -> dict[str, str]:
    row = await store.get_any(reminder_id) if REMINDER_ID.fullmatch(reminder_id) else None
    if row is None:
        raise ApiError(404, "unknown reminder id")
    # The deletion is written before the workflow is cancelled: an armed send checks it at its fence, so
    # nothing goes out for the reminder from this commit on, even if the cancel below never happens.
    await store.mark_deleted(reminder_id)
    handle = temporal.get_workflow_handle_for(ReminderWorkflow.run, workflow_id(reminder_id))
    try:
        await handle.cancel()
    except RPCError as err:
        # A reminder whose workflow already ended has nothing left to stop.
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
    if row["deleted_at"] is not None:
        # Deleted before (a retry after a 503 finishes the cancel): as unknown as any deleted reminder.
        raise ApiError(404, "unknown reminder id")
    DELETED.inc()
    log.info("deleted reminder %s", reminder_id, extra={"reminder_id": reminder_id})
    return {"reminder_id": reminder_id, "message": f"Successfully deleted reminder with id {reminder_id}."}
