"""What the routes are handed: settings, the PostgreSQL mirror, the Temporal client, the caller's key."""

from __future__ import annotations

import asyncio
import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from temporalio.client import Client
from temporalio.service import RPCError

from activities.texts import texts_from_settings
from api.errors import DATABASE_ERRORS, ApiError, Unavailable
from db.store import Store, create_pool
from settings import Settings
from stack.clients import connect_temporal

CONNECT_TIMEOUT = 5.0


class Services:
    """One Temporal client and one pool for the process, connected on first use so the API starts (and
    answers 503) while a dependency is down."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.texts = texts_from_settings(settings)
        self._client: Client | None = None
        self._store: Store | None = None
        self._lock = asyncio.Lock()

    async def temporal(self) -> Client:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    try:
                        self._client = await asyncio.wait_for(
                            connect_temporal(self.settings), timeout=CONNECT_TIMEOUT
                        )
                    except (RuntimeError, RPCError, OSError, TimeoutError) as err:
                        raise Unavailable("Temporal") from err
        return self._client

    async def store(self) -> Store:
        if self._store is None:
            async with self._lock:
                if self._store is None:
                    if not self.settings.database_url:
                        raise Unavailable("PostgreSQL (DATABASE_URL is not set)")
                    try:
                        pool = await asyncio.wait_for(
                            create_pool(
                                self.settings.database_url,
                                min_size=1,
                                max_size=self.settings.api_db_pool_size,
                            ),
                            timeout=CONNECT_TIMEOUT,
                        )
                    except DATABASE_ERRORS as err:
                        raise Unavailable("PostgreSQL") from err
                    store = Store(pool)
                    # The API may come up before the worker: both bring the schema up to date, under a lock.
                    await store.migrate()
                    self._store = store
        return self._store

    async def close(self) -> None:
        if self._store is not None:
            await self._store.pool.close()


# Every dependency is `async def`: FastAPI runs a plain `def` one in its thread pool, a thread hop for each
# on every request (a profile of the webhooks showed them at a seventh of the API's CPU).
def services_of(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


async def get_services(request: Request) -> Services:
    return services_of(request)


async def get_store(services: Annotated[Services, Depends(get_services)]) -> Store:
    return await services.store()


async def get_temporal(services: Annotated[Services, Depends(get_services)]) -> Client:
    return await services.temporal()


async def get_settings_dep(services: Annotated[Services, Depends(get_services)]) -> Settings:
    return services.settings


_bearer = HTTPBearer(auto_error=False, description="One of the keys in API_KEYS")


async def require_api_key(
    settings: Annotated[Settings, Depends(get_settings_dep)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    keys = settings.api_key_list
    if not keys:
        return
    given = credentials.credentials.encode() if credentials is not None else b""
    # Compare against every key so the time taken says nothing about which one nearly matched.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, key.encode())
    if not matched:
        raise ApiError(401, "a valid API key is required: Authorization: Bearer <key>")


ServicesDep = Annotated[Services, Depends(get_services)]
StoreDep = Annotated[Store, Depends(get_store)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
