"""API keys on /reminder and the webhook token, checked in process (no servers needed for a refusal)."""

from __future__ import annotations

import httpx
import pytest

from api.main import create_app
from devstack.embedded import free_port
from settings import Settings


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(
        _env_file=None,
        api_keys="key-one, key-two",
        webhook_token="hook-secret",
        database_url=f"postgresql://postgres@/postgres?host={tmp_path}",
        temporal_address=f"127.0.0.1:{free_port()}",
    )


async def call(settings: Settings, method: str, path: str, **kwargs) -> httpx.Response:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
            return await http.request(method, path, **kwargs)


@pytest.mark.parametrize("path", ["/reminder", "/reminder/0123", "/reminder/0123/messages"])
async def test_reminder_routes_need_a_key(settings, path):
    response = await call(settings, "GET", path)
    assert response.status_code == 401
    assert "API key" in response.json()["message"]
    wrong = await call(settings, "GET", path, headers={"Authorization": "Bearer key-three"})
    assert wrong.status_code == 401


async def test_post_and_delete_need_a_key(settings):
    assert (await call(settings, "POST", "/reminder", json={})).status_code == 401
    assert (await call(settings, "DELETE", "/reminder/abc")).status_code == 401


async def test_a_listed_key_gets_past_auth(settings):
    # Past the key check the next thing is the body: a 400, not a 401.
    response = await call(settings, "POST", "/reminder", json={}, headers={"Authorization": "Bearer key-two"})
    assert response.status_code == 400
    assert response.json()["message"].startswith("contact_number:")


async def test_open_when_no_keys(settings):
    response = await call(settings.model_copy(update={"api_keys": None}), "POST", "/reminder", json=[])
    assert response.status_code == 400


@pytest.mark.parametrize("path", ["/", "/webhooks/flowroute", "/webhooks/flowroute/dlr"])
async def test_webhooks_need_the_token(settings, path):
    assert (await call(settings, "POST", path, json={})).status_code == 401
    assert (await call(settings, "POST", f"{path}?token=nope", json={})).status_code == 401
    with_query = await call(settings, "POST", f"{path}?token=hook-secret", json={})
    assert with_query.status_code == 400
    with_header = await call(settings, "POST", path, json={}, headers={"X-Webhook-Token": "hook-secret"})
    assert with_header.status_code == 400


async def test_openapi_shows_the_bearer_scheme(settings):
    schema = (await call(settings, "GET", "/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


async def test_body_over_64_kib_is_413(settings):
    response = await call(
        settings.model_copy(update={"api_keys": None}),
        "POST",
        "/reminder",
        content=b"{" + b" " * 70000 + b"}",
    )
    assert response.status_code == 413
