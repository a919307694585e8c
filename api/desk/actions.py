"""The front desk's reminder page (schedule, messages, reschedule, delete, send again), its inbox of
replies that need a person, its opt-outs and its new-appointment form. Every form posts back here with
its CSRF token; the work itself is the API's own code."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Response

from api.desk.web import PREFIX, Desk, DeskRoute, back_to, desk, render
from api.errors import ApiError
from api.routes import opt_outs
from api.routes.inbox import MAX_REPLY, inbound_message, reply_to
from api.routes.reminders import REMINDER_ID, apply_change, create_from, delete_reminder
from api.routes.resend import resend
from api.validation import InvalidInput, clean_text, parse_contact_number
from db.views import message_view, reminder_view

router = APIRouter(prefix=PREFIX, route_class=DeskRoute, include_in_schema=False)
DeskDep = Annotated[Desk, Depends(desk)]
FIELDS = (
    "contact_number",
    "appointment_time",
    "timezone",
    "notify_window",
    "location",
    "participant",
    "language",
)


def _messages(desk: Desk, rows: list[Any]) -> list[dict[str, Any]]:
    return [{**message_view(m), "when": desk.local(m["at"])} for m in rows]


async def reminder_context(desk: Desk, reminder_id: str) -> dict[str, Any]:
    store = await desk.services.store()
    row = await store.get(reminder_id) if REMINDER_ID.fullmatch(reminder_id) else None
    if row is None:
        raise ApiError(404, "There is no such appointment (it may have been deleted).")
    zone = row["timezone"] or desk.settings.org_timezone
    local = row["appointment"].astimezone(ZoneInfo(zone))
    return {
        "r": reminder_view(row),
        "when": desk.local(row["appointment"], "%A %d %B %Y, %H:%M"),
        "notify": [desk.local(t, "%a %d %b %H:%M") for t in row["notify_times"]],
        "messages": _messages(desk, await store.messages(reminder_id)),
        "edit": {
            "appointment_time": local.strftime("%Y-%m-%dT%H:%M"),
            "timezone": zone,
            "notify_window": (list(row["notify_windows"]) or [1])[0],
        },
        "open": row["status"] in ("scheduled", "awaiting_reply", "confirmed", "declined"),
    }


@router.get("/reminder/{reminder_id}")
async def reminder_page(reminder_id: str, desk: DeskDep) -> Response:
    return await render(desk, "reminder.html", **await reminder_context(desk, reminder_id), error=None)


@router.get("/reminder/{reminder_id}/live")
async def reminder_live(reminder_id: str, desk: DeskDep) -> Response:
    return await render(desk, "reminder_live.html", **await reminder_context(desk, reminder_id))


@router.post("/reminder/{reminder_id}/reschedule")
async def reschedule(reminder_id: str, desk: DeskDep) -> Response:
    form = await desk.form()
    body = {
        name: str(form.get(name) or "").strip() for name in ("appointment_time", "timezone", "notify_window")
    }
    try:
        await apply_change(reminder_id, {k: v for k, v in body.items() if v}, desk.services)
    except (InvalidInput, ApiError) as err:
        context = await reminder_context(desk, reminder_id)
        context["edit"] = body
        message = str(err) if isinstance(err, InvalidInput) else err.message
        return await render(desk, "reminder.html", 400, **context, error=message)
    return back_to(f"{PREFIX}/reminder/{reminder_id}", "rescheduled")


@router.post("/reminder/{reminder_id}/delete")
async def delete(reminder_id: str, desk: DeskDep) -> Response:
    await desk.form()
    store, temporal = await desk.services.store(), await desk.services.temporal()
    await delete_reminder(reminder_id, store, temporal)
    return back_to(PREFIX, "deleted")


@router.post("/reminder/{reminder_id}/resend")
async def send_again(reminder_id: str, desk: DeskDep) -> Response:
    await desk.form()
    try:
        outcome = (await resend(desk.services, reminder_id))["message"]
    except ApiError as err:
        if err.status != 409:
            raise
        outcome = "opted-out"
    return back_to(f"{PREFIX}/reminder/{reminder_id}", outcome.replace(" ", "-"))


async def inbox_context(desk: Desk) -> dict[str, Any]:
    store = await desk.services.store()
    page = await store.inbox_page(limit=50, newest_first=True)
    items = [
        {
            "m": {**message_view(row), "when": desk.local(row["at"])},
            "reminder": reminder_view(reminder) if reminder is not None else None,
            "conversation": _messages(desk, talk[:-1]),
            "form_key": uuid.uuid4().hex,
        }
        for row, reminder, talk in await store.inbox_context(page.rows, 6)
    ]
    return {"items": items, "more": page.next_after is not None}


@router.get("/inbox")
async def inbox_page(desk: DeskDep) -> Response:
    return await render(desk, "inbox.html", **await inbox_context(desk))


@router.get("/inbox/live")
async def inbox_live(desk: DeskDep) -> Response:
    return await render(desk, "inbox_live.html", **await inbox_context(desk))


@router.post("/inbox/{message_id}/reply")
async def reply(message_id: str, desk: DeskDep) -> Response:
    form = await desk.form()
    store = await desk.services.store()
    row = await inbound_message(store, message_id)
    try:
        text = clean_text(str(form.get("body") or ""), "body", MAX_REPLY).strip()
    except InvalidInput:
        text = ""
    if not text:
        return back_to(f"{PREFIX}/inbox")
    form_key = "".join(c for c in str(form.get("form_key") or "") if c.isalnum())[:64] or uuid.uuid4().hex
    try:
        outcome = await reply_to(desk.services, store, row, text, f"staff:{row['id']}:{form_key}")
    except ApiError as err:
        if err.status != 409:
            raise
        return back_to(f"{PREFIX}/inbox", "opted-out")
    await store.mark_done(row["id"])
    return back_to(f"{PREFIX}/inbox", "replied" if outcome == "sent" else "reply-queued")


@router.post("/inbox/{message_id}/done")
async def done(message_id: str, desk: DeskDep) -> Response:
    await desk.form()
    store = await desk.services.store()
    await store.mark_done((await inbound_message(store, message_id))["id"])
    return back_to(f"{PREFIX}/inbox", "done")


async def opt_out_page(desk: Desk, status: int = 200, **context: Any) -> Response:
    store = await desk.services.store()
    rows = await store.list_opt_outs(limit=500)
    listed = [{**opt_outs.view(r), "when": desk.local(r["changed_at"])} for r in rows]
    base: dict[str, Any] = {"error": None, "values": {}}
    return await render(desk, "opt_outs.html", status, opt_outs=listed, **{**base, **context})


@router.get("/opt-outs")
async def opt_outs_list(desk: DeskDep) -> Response:
    return await opt_out_page(desk)


@router.post("/opt-outs")
async def record_opt_out(desk: DeskDep) -> Response:
    form = await desk.form()
    values = {"contact_number": str(form.get("contact_number") or ""), "note": str(form.get("note") or "")}
    try:
        number = parse_contact_number(values["contact_number"].strip() or None)
        note = clean_text(values["note"], "note", opt_outs.MAX_NOTE).strip() or None
    except InvalidInput as err:
        return await opt_out_page(desk, 400, error={"field": err.field, "message": str(err)}, values=values)
    store = await desk.services.store()
    await opt_outs._by_staff(desk.services, store, number, opted_out=True, note=note)
    return back_to(f"{PREFIX}/opt-outs", "opt-out")


@router.get("/new")
async def new_form(desk: DeskDep) -> Response:
    values = {"timezone": desk.settings.org_timezone, "notify_window": "24"}
    return await render(desk, "new.html", values=values, errors={}, form_key=uuid.uuid4().hex)


@router.post("/new")
async def create(desk: DeskDep) -> Response:
    form = await desk.form()
    values = {name: str(form.get(name) or "").strip() for name in FIELDS}
    body = {name: value for name, value in values.items() if value}
    form_key = "".join(c for c in str(form.get("form_key") or "") if c.isalnum())[:64] or None
    try:
        made = await create_from(body, desk.services, f"desk:{form_key}" if form_key else None)
    except InvalidInput as err:
        field = err.field if err.field in FIELDS else "form"
        if field == "form" and err.field == "notify_windows":
            field = "notify_window"
        errors = {field: str(err)}
        return await render(desk, "new.html", 400, values=values, errors=errors, form_key=uuid.uuid4().hex)
    except ApiError as err:
        if err.status != 409:
            raise
        errors = {"form": err.message}
        return await render(desk, "new.html", 409, values=values, errors=errors, form_key=uuid.uuid4().hex)
    return back_to(f"{PREFIX}/reminder/{made['reminder_id']}", "created")
