"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

from api.deps import Services, get_services

router = APIRouter(tags=["health"])
CHECK_TIMEOUT = 3.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(services: Annotated[Services, Depends(get_services)]) -> JSONResponse:
    checks: dict[str, str] = {}

    async def temporal() -> None:
        client = await services.temporal()
        await client.workflow_service.get_system_info(
            GetSystemInfoRequest(), timeout=timedelta(seconds=CHECK_TIMEOUT)
        )

    async def postgres() -> None:
        await (await services.store()).ping()

    for name, check in (("temporal", temporal), ("postgres", postgres)):
        try:
            await asyncio.wait_for(check(), timeout=CHECK_TIMEOUT)
            checks[name] = "ok"
        except Exception as err:  # noqa: BLE001 - readiness reports any failure rather than raising
            checks[name] = f"unavailable: {type(err).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", **checks}, status_code=200 if ready else 503
    )
