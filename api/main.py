"""The FastAPI application: `uvicorn --factory api.main:serve`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.deps import Services
from api.desk import install as install_desk
from api.errors import install_error_handlers
from api.limits import BodySizeLimit
from api.metrics import RequestMetrics
from api.metrics import router as metrics_router
from api.routes import batch, events, health, inbox, opt_outs, reminders, reports, resend, webhooks
from settings import Settings, get_settings
from stack.logs import setup_logging
from stack.trim import trim_forever

log = logging.getLogger("reminders.api")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = Services(settings)
        app.state.services = services
        if not settings.api_key_list:
            log.warning("API_KEYS is not set: the /reminder API is open to anyone who can reach it")
        stop = asyncio.Event()
        trimmer = asyncio.create_task(trim_forever(stop))
        try:
            yield
        finally:
            stop.set()
            await trimmer
            await services.close()

    app = FastAPI(
        title="SMS appointment reminders",
        version="0.1.0",
        description="Schedule appointment reminders by SMS, understand the replies, honour STOP.",
        lifespan=lifespan,
    )
    app.add_middleware(BodySizeLimit)
    app.add_middleware(RequestMetrics)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(metrics_router)
    # Before the reminders' routes: `/reminder/batch` is not a reminder id.
    app.include_router(batch.router)
    app.include_router(reminders.router)
    app.include_router(resend.router)
    app.include_router(opt_outs.router)
    app.include_router(webhooks.router)
    app.include_router(inbox.router)
    app.include_router(events.router)
    app.include_router(reports.router)
    install_desk(app)
    return app


def serve() -> FastAPI:
    """The factory uvicorn calls: `uvicorn --factory api.main:serve`."""
    settings = get_settings()
    setup_logging(settings)
    return create_app(settings)
