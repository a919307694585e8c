"""What every front-desk page shares: the signed-in session, the CSRF check, rendering with the inbox badge,
and failures shown as pages (a dependency down is a friendly 503, never a traceback)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData
from temporalio.service import RPCError

from api.deps import Services, services_of
from api.desk import session as cookies
from api.errors import ApiError
from db.store import DATABASE_ERRORS
from settings import Settings

log = logging.getLogger("reminders.api")

COOKIE = "desk_session"
PREFIX = "/app"
# The desk's pages load their one script and stylesheet from the desk itself and nothing else: a
# contact's text shown on a page can never run as script, even if escaping were ever missed.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
    " form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

SAID = {
    "created": "Appointment created; its reminder is scheduled.",
    "rescheduled": "Appointment rescheduled.",
    "deleted": "Appointment deleted; nothing more will be sent for it.",
    "sent": "The reminder was sent again.",
    "queued": "The reminder is on its way again.",
    "not-sent": "The reminder could not be sent again; see its messages.",
    "opted-out": "The contact has opted out (STOP): nothing was sent.",
    "replied": "Your answer was sent from our number.",
    "reply-queued": "Your answer is on its way.",
    "done": "Marked done.",
    "opt-out": "Opt-out recorded: this number will be sent nothing more.",
    "signed-out": "You are signed out.",
}


class SignInNeeded(Exception):
    pass


@dataclass(frozen=True)
class Desk:
    """The request's session and what pages need around it."""

    request: Request
    services: Services
    session: cookies.Session
    secret: bytes

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.settings.org_timezone)

    @property
    def csrf(self) -> str:
        return cookies.csrf_token(self.secret, self.session)

    def local(self, at: datetime | None, fmt: str = "%a %d %b %H:%M") -> str:
        return at.astimezone(self.zone).strftime(fmt) if at is not None else ""

    async def form(self) -> FormData:
        """The posted form, once its CSRF token is checked."""
        form = await self.request.form()
        if not cookies.csrf_ok(self.secret, self.session, form.get("csrf")):
            raise ApiError(403, "This form has expired. Reload the page and try again.")
        return form


def secret_of(settings: Settings) -> bytes:
    return cookies.desk_secret(settings.desk_secret, settings.api_key_list)


def session_of(request: Request, settings: Settings) -> cookies.Session | None:
    return cookies.read_cookie(
        request.cookies.get(COOKIE), secret_of(settings), settings.api_key_list, int(time.time())
    )


def set_session(response: Response, request: Request, value: str) -> None:
    response.set_cookie(
        COOKIE,
        value,
        max_age=cookies.MAX_AGE,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


async def desk(request: Request) -> Desk:
    """The dependency of every page but sign-in: a session signed in with a key (or any session, when
    API_KEYS is unset and the API is open too)."""
    services = services_of(request)
    found = session_of(request, services.settings)
    if found is None or (services.settings.api_key_list and not found.signed_in):
        raise SignInNeeded()
    return Desk(request, services, found, secret_of(services.settings))


async def render(desk: Desk, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    store = await desk.services.store()
    count = await store.inbox_count()
    response = page(
        desk.request,
        name,
        status,
        csrf=desk.csrf,
        inbox_count=count,
        signed_in=desk.session.signed_in,
        desk=desk,
        said=SAID.get(desk.request.query_params.get("said", "")),
        **context,
    )
    # The polling script keeps every page's inbox badge fresh from this header.
    response.headers["X-Inbox-Count"] = str(count)
    response.headers["Cache-Control"] = "no-store"
    return response


def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    settings: Settings = services_of(request).settings
    base = {
        "open_warning": not settings.api_key_list,
        "org": settings.org_name,
        "zone": settings.org_timezone,
        "inbox_count": None,
        "csrf": None,
        "signed_in": False,
    }
    response = templates.TemplateResponse(request, name, {**base, **context}, status_code=status)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def back_to(path: str, said: str | None = None) -> RedirectResponse:
    return RedirectResponse(f"{path}?said={quote(said)}" if said else path, status_code=303)


def _failure(request: Request, status: int, message: str) -> Response:
    if request.url.path.endswith("/live"):
        return Response(message, status_code=status, media_type="text/plain")
    return page(request, "error.html", status, code=status, message=message)


FAILURES: tuple[type[BaseException], ...] = (RPCError, *DATABASE_ERRORS)


class DeskRoute(APIRoute):
    """Routes whose failures are pages: sign-in when the session is missing, 503 when PostgreSQL or
    Temporal is down, the API's own message for a 404 or 409."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInNeeded:
                if request.url.path.endswith("/live") or request.method != "GET":
                    return Response("sign in again", status_code=401, media_type="text/plain")
                target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
                return RedirectResponse(f"{PREFIX}/login?next={target}", status_code=303)
            except ApiError as err:
                return _failure(request, err.status, err.message)
            except FAILURES as err:
                log.warning("front desk: a dependency failed: %r", err)
                return _failure(request, 503, "A service the desk needs is unavailable.")

        return guarded
