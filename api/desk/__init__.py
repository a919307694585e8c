"""The front desk: web pages for the people who run the appointments, served by the API under /app."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles


def install(app: FastAPI) -> None:
    from api.desk import actions, pages

    app.include_router(pages.router)
    app.include_router(actions.router)
    app.mount("/app/static", StaticFiles(directory=Path(__file__).parent / "static"), name="desk-static")
