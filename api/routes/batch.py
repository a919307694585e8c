"""`POST /reminder/batch`: up to BATCH_MAX reminders in one request, as a day's or a week's appointments are
imported. Each item is what `POST /reminder` takes.

Every item is read before anything is made: one that breaks a rule answers 400 naming it
(`reminders[3].contact_number`), and nothing is made. The rows are written together (all or none), then the
workflows are started side by side. With an Idempotency-Key each item is keyed by the key and its place, so
the same request sent again makes nothing twice. Temporal failing part way answers 503 with the reminders
that were made; those it could not start are undone, and the same request with the same key makes the rest.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from api.deps import ServicesDep, require_api_key
from api.errors import ApiError
from api.routes.reminders import NewCreate, check_idempotency_key, created, prepare_create
from api.schemas import ReminderRequest
from api.starts import start_reminder
from api.validation import InvalidInput, read_json

log = logging.getLogger("reminders.api")
router = APIRouter(prefix="/reminder", tags=["reminders"], dependencies=[Depends(require_api_key)])

# Items in one request: 100 long ones stay under the API's 64 KiB body limit.
BATCH_MAX = 100

BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["reminders"],
                    "properties": {
                        "reminders": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": BATCH_MAX,
                            "items": ReminderRequest.model_json_schema(),
                        }
                    },
                }
            }
        },
    }
}


class CreatedBatch(BaseModel):
    reminder_ids: list[str]
    message: str


def read_batch(data: Any, services: ServicesDep, idem: str | None) -> list[NewCreate]:
    """Every item validated and keyed, or the InvalidInput naming the first bad field. Changes nothing."""
    items = data.get("reminders") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise InvalidInput("reminders", "is required: a list of reminders, each as POST /reminder takes")
    if not 1 <= len(items) <= BATCH_MAX:
        raise InvalidInput("reminders", f"must hold 1 to {BATCH_MAX} reminders")
    check_idempotency_key(idem)
    news = []
    for i, body in enumerate(items):
        try:
            news.append(prepare_create(body, services, f"batch:{idem}:{i}" if idem is not None else None))
        except InvalidInput as err:
            raise InvalidInput(f"reminders[{i}].{err.field}", err.problem) from None
    return news


@router.post("/batch", response_model=CreatedBatch, openapi_extra=BATCH_BODY)
async def create_batch(
    request: Request,
    services: ServicesDep,
    idempotency_key: str | None = Header(
        None,
        description="the same key with the same body creates each reminder once however often it is sent",
    ),
) -> Any:
    news = read_batch(await read_json(request), services, idempotency_key)
    store = await services.store()
    temporal = await services.temporal()
    made = await store.insert_many([(n.state, n.request_hash, n.segments) for n in news])
    if made is None:
        raise ApiError(409, "Idempotency-Key was already used with a different body")
    queue = services.settings.task_queue
    outcomes = await asyncio.gather(
        *(start_reminder(temporal, n.inp, queue, n.state) for n in news), return_exceptions=True
    )
    ids = [n.inp.reminder_id for n in news]
    lost: set[str] = set()
    for reminder_id, outcome in zip(ids, outcomes, strict=True):
        if isinstance(outcome, WorkflowAlreadyStartedError) or not isinstance(outcome, BaseException):
            continue
        if not isinstance(outcome, RPCError | RuntimeError):
            raise outcome
        log.warning("could not start reminder %s: %s", reminder_id, outcome)
        lost.add(reminder_id)
    for reminder_id in ids:
        if reminder_id in made and reminder_id in lost:
            await store.forget(reminder_id)
        elif reminder_id in made:
            created(reminder_id)
    if lost:
        again = "the same request with the same Idempotency-Key" if idempotency_key else "the rest"
        return JSONResponse(
            {
                "message": f"Temporal is unavailable: {len(ids) - len(lost)} of {len(ids)} reminders were"
                f" made (reminder_ids), the others undone; send {again} again shortly",
                "reminder_ids": [r for r in ids if r not in lost],
            },
            status_code=503,
        )
    return {"reminder_ids": ids, "message": f"Successfully created {len(ids)} reminders."}
