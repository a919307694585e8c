"""How failures reach clients: `{"message": ...}` with 400, 401, 404, 409, 413 or 503, never FastAPI's 422."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError

from api.validation import InvalidInput
from db.store import DATABASE_ERRORS

log = logging.getLogger("reminders.api")


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Unavailable(ApiError):
    def __init__(self, what: str) -> None:
        super().__init__(503, f"{what} is unavailable; nothing was changed, try again shortly")


def _message(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, err: ApiError) -> JSONResponse:
        return _message(err.status, err.message)

    @app.exception_handler(InvalidInput)
    async def _invalid(_: Request, err: InvalidInput) -> JSONResponse:
        return _message(400, str(err))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return _message(400, f"{where}: {first.get('msg', 'is invalid')}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, err: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"message": str(err.detail)}, status_code=err.status_code, headers=err.headers)

    @app.exception_handler(RPCError)
    async def _temporal(_: Request, err: RPCError) -> JSONResponse:
        log.warning("temporal call failed: %s", err)
        return _message(503, "Temporal is unavailable; nothing was changed, try again shortly")

    for kind in DATABASE_ERRORS:
        app.add_exception_handler(kind, _database)  # type: ignore[arg-type]


async def _database(_: Request, err: Exception) -> JSONResponse:
    log.warning("database call failed: %r", err)
    return _message(503, "PostgreSQL is unavailable; nothing was changed, try again shortly")
