"""`POST /reminder/{id}/resend`: staff send the reminder's text again now, on purpose. It has its own
purpose (resend) and its own send key, so it is recorded as what it is and never counted as a duplicate
of the reminder; an opted-out contact is still not sent anything."""

from __future__ import annotations

import logging
import uuid

from fastapi import APIRouter, Depends

from api.deps import ServicesDep, require_api_key
from api.errors import ApiError
from api.outbound import send_for_staff
from api.routes.reminders import REMINDER_ID
from workflows.models import Purpose, SendRequest

log = logging.getLogger("reminders.api")
router = APIRouter(prefix="/reminder", tags=["reminders"], dependencies=[Depends(require_api_key)])


async def resend(services: ServicesDep, reminder_id: str) -> dict[str, str]:
    """Sends the reminder's text once more: `sent`, `queued` (on its way) or `not sent`; 409 when the
    contact opted out, 404 for an unknown (or deleted) reminder."""
    store = await services.store()
    row = await store.get(reminder_id) if REMINDER_ID.fullmatch(reminder_id) else None
    if row is None:
        raise ApiError(404, "unknown reminder id")
    request = SendRequest(
        reminder_id=reminder_id,
        contact_number=row["contact_number"],
        purpose=Purpose.RESEND,
        key=f"resend:{reminder_id}:{uuid.uuid4().hex}",
        appt_user_dt=row["appt_user_dt"],
        location=row["location"],
        participant=row["participant"],
        language=row["language"],
    )
    outcome = await send_for_staff(
        await services.temporal(), store, services.settings, request, f"resend of reminder {reminder_id}"
    )
    log.info("reminder %s sent again by staff: %s", reminder_id, outcome, extra={"reminder_id": reminder_id})
    return {"reminder_id": reminder_id, "message": outcome}


@router.post("/{reminder_id}/resend")
async def resend_reminder(reminder_id: str, services: ServicesDep) -> dict[str, str]:
    return await resend(services, reminder_id)
