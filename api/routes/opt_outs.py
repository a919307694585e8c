"""`/opt-outs`: consent as the service holds it. Staff record an opt-out taken at the desk or by phone,
list them with where each came from, and record consent given again in person."""

from __future__ import annotations

import base64
import binascii
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
from fastapi import APIRouter, Depends, Query, Request
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from api.deps import Services, ServicesDep, StoreDep, require_api_key
from api.errors import ApiError
from api.validation import InvalidInput, clean_text, parse_contact_number, read_json
from db.store import Store
from settings import Settings
from workflows.keyword import KeywordWorkflow
from workflows.models import KEYWORD_WORKFLOW_ID_PREFIX, KeywordInput

log = logging.getLogger("reminders.api")
router = APIRouter(prefix="/opt-outs", tags=["opt-outs"], dependencies=[Depends(require_api_key)])

MAX_NOTE = 500
LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX = 100, 1000


async def start_keyword(temporal: Client, settings: Settings, inp: KeywordInput, source: str) -> bool:
    """One workflow per message: a webhook delivered again changes nothing. False when it was handled."""
    try:
        await temporal.start_workflow(
            KeywordWorkflow.run,
            inp,
            id=f"{KEYWORD_WORKFLOW_ID_PREFIX}{inp.message_id.replace(':', '-', 1)}",
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"{inp.keyword} ({source}) from {inp.contact_number}",
        )
    except WorkflowAlreadyStartedError:
        return False
    return True


async def apply_consent(
    store: Store,
    temporal: Client,
    settings: Settings,
    *,
    number: str,
    opted_out: bool,
    at: datetime,
    source: str,
    message_id: str,
    keyword: str | None = None,
    declines: str | None = None,
    note: str | None = None,
) -> bool:
    """Writes the change of consent first (ordered by `at`), then tells the number's open reminders and,
    for a keyword, answers it. Answers False when the message was handled before."""
    await store.set_consent(number, opted_out, at=at, source=source, message_id=message_id, note=note)
    if keyword is None and not opted_out:
        return True
    inp = KeywordInput(
        contact_number=number,
        keyword=keyword or "opt_out",
        message_id=message_id,
        answer=keyword is not None,
        declines=declines,
    )
    return await start_keyword(temporal, settings, inp, source)


async def _by_staff(
    services: Services, store: Store, number: str, *, opted_out: bool, note: str | None
) -> None:
    await apply_consent(
        store,
        await services.temporal(),
        services.settings,
        number=number,
        opted_out=opted_out,
        at=datetime.now(UTC),
        source="staff",
        message_id=f"staff:{uuid.uuid4().hex}",
        note=note,
    )


def view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "contact_number": row["contact_number"],
        "opted_out": row["opted_out"],
        "source": row["source"],
        "at": row["changed_at"].astimezone(UTC).isoformat() if row["changed_at"].year > 1 else None,
        "message_id": row["message_id"],
        "note": row["note"],
    }


async def _body(request: Request) -> dict[str, Any]:
    data = await read_json(request)
    if not isinstance(data, dict):
        raise InvalidInput("body", "must be a JSON object")
    return data


def _note(data: dict[str, Any], *, required: bool) -> str | None:
    if data.get("note") is None:
        if required:
            raise InvalidInput("note", "is required: say how the contact gave consent again")
        return None
    note = clean_text(data["note"], "note", MAX_NOTE).strip()
    if required and not note:
        raise InvalidInput("note", "is required: say how the contact gave consent again")
    return note or None


@router.post("", status_code=201)
async def record_opt_out(request: Request, services: ServicesDep) -> dict[str, Any]:
    """An opt-out taken by staff (at the desk, by phone): the number's pending reminders become opted_out."""
    data = await _body(request)
    if data.get("contact_number") is None:
        raise InvalidInput("contact_number", "is required")
    number = parse_contact_number(data["contact_number"])
    note = _note(data, required=False)
    store = await services.store()
    await _by_staff(services, store, number, opted_out=True, note=note)
    log.info("opt-out of %s recorded by staff", number)
    row = await store.opt_out(number)
    assert row is not None
    return view(row)


@router.get("")
async def list_opt_outs(
    store: StoreDep,
    limit: int = Query(LIST_LIMIT_DEFAULT, description=f"1 to {LIST_LIMIT_MAX}"),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
) -> dict[str, Any]:
    if not 1 <= limit <= LIST_LIMIT_MAX:
        raise InvalidInput("limit", f"must be between 1 and {LIST_LIMIT_MAX}")
    after = None
    if cursor:
        try:
            after = base64.urlsafe_b64decode(cursor.encode()).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError) as err:
            raise InvalidInput("cursor", "is not a cursor this API gave out") from err
        if not after.isdigit():
            raise InvalidInput("cursor", "is not a cursor this API gave out")
    rows = await store.list_opt_outs(limit=limit + 1, after=after)
    body: dict[str, Any] = {"opt_outs": [view(r) for r in rows[:limit]]}
    if len(rows) > limit:
        body["next_cursor"] = base64.urlsafe_b64encode(rows[limit - 1]["contact_number"].encode()).decode()
    return body


@router.delete("/{number}")
async def opt_back_in(number: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    """Consent given again in person: the number may be sent reminders again. A note saying how is required."""
    contact = parse_contact_number(
        number if number.startswith("+") or len(number) == 11 else f"+{number}", "number"
    )
    data = await _body(request) if await request.body() else {}
    note = _note(
        {**data, **({"note": request.query_params["note"]} if "note" in request.query_params else {})},
        required=True,
    )
    store = await services.store()
    row = await store.opt_out(contact)
    if row is None or not row["opted_out"]:
        raise ApiError(404, "this number is not opted out")
    await _by_staff(services, store, contact, opted_out=False, note=note)
    message = "Consent recorded again; reminders will be sent to this number."
    if services.settings.provider == "twilio":
        message += " With Twilio the contact must still text START: Twilio blocks the number until then."
    log.info("opt-in of %s recorded by staff", contact)
    return {"contact_number": contact, "opted_out": False, "message": message}
