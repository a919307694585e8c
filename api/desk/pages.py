"""The front desk's sign-in and its day view: the appointments of a day or week in the clinic's zone,
with counts and the confirmation rate, kept fresh by the page's script polling `/app/day/live`."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as clock
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse

from api.deps import services_of
from api.desk import session as cookies
from api.desk.web import (
    PREFIX,
    SAID,
    Desk,
    DeskRoute,
    back_to,
    desk,
    page,
    render,
    secret_of,
    session_of,
    set_session,
)
from api.routes.reminders import LISTED_STATUSES
from db.views import reminder_view

router = APIRouter(prefix=PREFIX, route_class=DeskRoute, include_in_schema=False)
DeskDep = Annotated[Desk, Depends(desk)]
DAY_LIMIT = 1000


def _safe_next(target: str | None) -> str:
    """Only a path of the desk itself: never another site."""
    if target and target.startswith(PREFIX) and not target.startswith("//") and "\\" not in target:
        return target
    return PREFIX


@router.get("/login")
async def login_page(request: Request, next: str | None = None) -> Response:
    settings = services_of(request).settings
    current = session_of(request, settings)
    if current is not None and (current.signed_in or not settings.api_key_list):
        return RedirectResponse(_safe_next(next), status_code=303)
    if not settings.api_key_list and request.query_params.get("check"):
        # The open-mode session set one hop ago did not come back: a client without cookies would
        # otherwise go round between this page and the desk for ever.
        return page(
            request,
            "error.html",
            400,
            code=400,
            message="The desk keeps its session in a cookie, and this browser sent none back: allow "
            "cookies for this site and open the desk again.",
        )
    # Signing in needs a session too: its nonce makes the sign-in form's CSRF token.
    value = cookies.new_cookie(secret_of(settings), int(time.time()))
    if not settings.api_key_list:
        # Open mode: back here once to see that the session came back, then on to the page asked for.
        response: Response = RedirectResponse(
            f"{PREFIX}/login?{urlencode({'next': _safe_next(next), 'check': '1'})}", status_code=303
        )
    else:
        fresh = cookies.read_cookie(value, secret_of(settings), [], int(time.time()))
        assert fresh is not None
        csrf = cookies.csrf_token(secret_of(settings), fresh)
        said = SAID.get(request.query_params.get("said", ""))
        response = page(request, "login.html", csrf=csrf, next=_safe_next(next), said=said)
    set_session(response, request, value)
    return response


@router.post("/login")
async def sign_in(request: Request) -> Response:
    settings = services_of(request).settings
    form = await request.form()
    current = session_of(request, settings)
    secret = secret_of(settings)
    target = _safe_next(str(form.get("next") or ""))
    if current is None or not cookies.csrf_ok(secret, current, form.get("csrf")):
        return RedirectResponse(f"{PREFIX}/login?next={target}", status_code=303)
    key = cookies.key_matches(str(form.get("key") or "").strip(), settings.api_key_list)
    if key is None:
        csrf = cookies.csrf_token(secret, current)
        return page(
            request, "login.html", 401, csrf=csrf, next=target, error="That key is not one of API_KEYS."
        )
    response = RedirectResponse(target, status_code=303)
    set_session(response, request, cookies.new_cookie(secret, int(time.time()), key))
    return response


@router.post("/logout")
async def sign_out(desk: DeskDep) -> Response:
    await desk.form()
    response = back_to(f"{PREFIX}/login", "signed-out")
    response.delete_cookie("desk_session", path=PREFIX)
    return response


@dataclass(frozen=True)
class DayQuery:
    day: date
    span: str
    status: str | None
    number: str
    problem: str | None

    @property
    def days(self) -> int:
        return 7 if self.span == "week" else 1

    @property
    def first(self) -> date:
        return self.day - timedelta(days=self.day.weekday()) if self.span == "week" else self.day

    def link(self, day: date) -> str:
        return f"{PREFIX}?date={day.isoformat()}&span={self.span}"

    @property
    def query(self) -> str:
        parts = [f"date={self.day.isoformat()}", f"span={self.span}"]
        if self.status:
            parts.append(f"status={self.status}")
        if self.number:
            parts.append(f"number={self.number}")
        return "&".join(parts)


def day_query(desk: Desk) -> DayQuery:
    params = desk.request.query_params
    today = datetime.now(desk.zone).date()
    problem = None
    try:
        day = date.fromisoformat(params.get("date") or today.isoformat())
    except ValueError:
        day, problem = today, "date: must be a date (YYYY-MM-DD); showing today"
    span = "week" if params.get("span") == "week" else "day"
    status = params.get("status") or None
    if status not in (None, *LISTED_STATUSES):
        status, problem = None, f"status: must be one of {', '.join(LISTED_STATUSES)}"
    number = "".join(c for c in (params.get("number") or "") if c.isdigit())[:15]
    return DayQuery(day, span, status, number, problem)


async def day_context(desk: Desk) -> dict[str, Any]:
    q = day_query(desk)
    start = datetime.combine(q.first, clock(0), tzinfo=desk.zone)
    end = datetime.combine(q.first + timedelta(days=q.days), clock(0), tzinfo=desk.zone)
    store = await desk.services.store()
    # Counted whole in PostgreSQL; the list, filtered there too, shows the first DAY_LIMIT.
    counts = await store.status_counts(start, end)
    page_ = await store.list_page(
        limit=DAY_LIMIT,
        status=q.status,
        number_part=q.number or None,
        appointment_from=start,
        appointment_to=end,
    )
    sent = sum(n_sent for _, n_sent in counts.values())
    confirmed = counts.get("confirmed", (0, 0))[0]
    shown = [
        {
            **reminder_view(r),
            "time": desk.local(r["appointment"], "%a %d %b %H:%M" if q.span == "week" else "%H:%M"),
        }
        for r in page_.rows
    ]
    return {
        "q": q,
        "rows": shown,
        "total": sum(n for n, _ in counts.values()),
        "counts": [(s, counts.get(s, (0, 0))[0]) for s in LISTED_STATUSES],
        "sent": sent,
        "rate": f"{confirmed / sent:.0%}" if sent else "–",
        "more": page_.next_after is not None,
        "limit": DAY_LIMIT,
        "statuses": LISTED_STATUSES,
        "title_day": q.first.strftime("%A %d %B %Y")
        if q.span == "day"
        else f"Week of {q.first.strftime('%d %B %Y')}",
        "prev": q.link(q.first - timedelta(days=q.days)),
        "next": q.link(q.first + timedelta(days=q.days)),
        "today": datetime.now(desk.zone).date(),
    }


@router.get("")
async def day_view(desk: DeskDep) -> Response:
    return await render(desk, "day.html", **await day_context(desk))


@router.get("/day/live")
async def day_live(desk: DeskDep) -> Response:
    return await render(desk, "day_live.html", **await day_context(desk))


@router.get("/badge/live")
async def badge(desk: DeskDep) -> Response:
    return await render(desk, "badge_live.html")
