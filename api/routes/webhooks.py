"""Inbound texts and delivery receipts from the SMS providers. Each signals the workflow it concerns."""

from __future__ import annotations

import hmac
import logging
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from twilio.request_validator import RequestValidator

from api.deps import Services, ServicesDep, SettingsDep
from api.errors import ApiError
from api.metrics import INBOUND
from api.routes.opt_outs import apply_consent, start_keyword
from api.validation import InvalidInput, clean_text, parse_contact_number, read_json
from db.store import Store
from rules.intents import KEYWORDS, Intent, classify, is_bare_cancel, keyword_of
from settings import Settings
from workflows.models import Answer, KeywordInput, Reply, workflow_id
from workflows.reminder import ReminderWorkflow

log = logging.getLogger("reminders.webhooks")
router = APIRouter(tags=["webhooks"])

MAX_ADDRESS = 18
MAX_BODY = 2000
MAX_PROVIDER_ID = 200


async def require_webhook_token(
    settings: SettingsDep,
    token: Annotated[str | None, Query(description="WEBHOOK_TOKEN, if set")] = None,
    x_webhook_token: Annotated[str | None, Header()] = None,
) -> None:
    expected = settings.webhook_token
    if not expected:
        return
    given = (token or x_webhook_token or "").encode()
    if not hmac.compare_digest(given, expected.encode()):
        raise ApiError(401, "a valid webhook token is required (?token= or X-Webhook-Token)")


def _text(container: dict[str, Any], field: str, limit: int, *, where: str = "") -> str:
    name = f"{where}{field}"
    if container.get(field) is None:
        raise InvalidInput(name, "is required")
    return clean_text(container[field], name, limit)


def _sender(value: str, field: str) -> str:
    text = value.strip()
    if not text.startswith("+") and not (len(text) == 11 and text.startswith("1")):
        text = "+" + text
    return parse_contact_number(text, field)


async def handle_inbound(
    *, provider: str, provider_id: str, sender: str, body: str, services: Services, at: datetime | None = None
) -> str:
    """Routes one received text; answers what was done with it. `at` is the provider's time of the message
    where it gives one (it orders opt-outs and opt-ins), else now."""
    outcome = await _route_inbound(
        provider=provider,
        provider_id=provider_id,
        sender=sender,
        body=body,
        at=at or datetime.now(UTC),
        store=await services.store(),
        temporal=await services.temporal(),
        settings=services.settings,
    )
    INBOUND.labels(provider, outcome).inc()
    return outcome


async def _route_inbound(
    *,
    provider: str,
    provider_id: str,
    sender: str,
    body: str,
    at: datetime,
    store: Store,
    temporal: Client,
    settings: Settings,
) -> str:
    intent = classify(body)
    message_id = f"{provider}:{provider_id}"
    if intent in KEYWORDS:
        await store.record_inbound(
            provider=provider, provider_id=provider_id, contact_number=sender, body=body, reminder_id=None
        )
        if intent == Intent.HELP:
            inp = KeywordInput(contact_number=sender, keyword=intent.value, message_id=message_id)
            return intent.value if await start_keyword(temporal, settings, inp, "keyword") else "duplicate"
        # A bare CANCEL opts out by carrier rule; it also declines the reminder waiting for this answer.
        declines = await store.route_reply(sender) if is_bare_cancel(body) else None
        # The consent is written before the provider hears 200 (PostgreSQL down: 503, and the provider
        # delivers it again), so the next send's fence sees it; ordered by the message's own time.
        fresh = await apply_consent(
            store,
            temporal,
            settings,
            number=sender,
            opted_out=intent == Intent.OPT_OUT,
            at=at,
            source="keyword" if keyword_of(body) is not None else "plain_words",
            message_id=message_id,
            keyword=intent.value,
            declines=declines,
        )
        return intent.value if fresh else "duplicate"
    # A message delivered again goes where it went the first time, never to a second reminder.
    reminder_id = await store.record_reply(
        provider=provider,
        provider_id=provider_id,
        contact_number=sender,
        body=body,
        understood=intent != Intent.UNKNOWN,
    )
    if reminder_id is None:
        log.info("text from %s matches no open reminder: in the inbox", sender)
        return "unmatched"
    handle = temporal.get_workflow_handle_for(ReminderWorkflow.run, workflow_id(reminder_id))
    try:
        await handle.signal(ReminderWorkflow.reply, Reply(message_id=message_id, answer=Answer(intent.value)))
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        await store.flag_attention(provider, provider_id)
        return "closed"
    log.info("reply routed to reminder %s", reminder_id, extra={"reminder_id": reminder_id})
    return "routed"


def _provider_time(value: Any) -> datetime | None:
    """Flowroute's message timestamp (ISO 8601, to the second), if it has a readable one."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@router.post("/", dependencies=[Depends(require_webhook_token)])
async def seed_inbound(request: Request, services: ServicesDep) -> dict[str, str]:
    """The seed's inbound format: `{"to": ..., "from": ..., "body": ...}`."""
    data = await read_json(request)
    if not isinstance(data, dict):
        raise InvalidInput("body", "must be a JSON object")
    _text(data, "to", MAX_ADDRESS)
    sender = _sender(_text(data, "from", MAX_ADDRESS), "from")
    body = _text(data, "body", MAX_BODY)
    message_id = data.get("id")
    if message_id is not None:
        message_id = clean_text(message_id, "id", MAX_PROVIDER_ID)
    outcome = await handle_inbound(
        provider="seed",
        provider_id=message_id or uuid.uuid4().hex,
        sender=sender,
        body=body,
        services=services,
    )
    return {"message": outcome}


def _jsonapi_data(data: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(data, dict) or not isinstance(data.get("data"), dict):
        raise InvalidInput("data", "must be a JSON:API object with data")
    inner = data["data"]
    message_id = inner.get("id")
    if not isinstance(message_id, str) or not message_id:
        raise InvalidInput("data.id", "is required and must be a string")
    clean_text(message_id, "data.id", MAX_PROVIDER_ID)
    attributes = inner.get("attributes")
    if not isinstance(attributes, dict):
        raise InvalidInput("data.attributes", "is required and must be an object")
    return message_id, attributes


@router.post("/webhooks/flowroute", dependencies=[Depends(require_webhook_token)])
async def flowroute_inbound(request: Request, services: ServicesDep) -> dict[str, str]:
    """Flowroute's v2.1 inbound message callback."""
    message_id, attributes = _jsonapi_data(await read_json(request))
    _text(attributes, "to", MAX_ADDRESS, where="data.attributes.")
    sender = _sender(_text(attributes, "from", MAX_ADDRESS, where="data.attributes."), "data.attributes.from")
    body = _text(attributes, "body", MAX_BODY, where="data.attributes.")
    outcome = await handle_inbound(
        provider="flowroute",
        provider_id=message_id,
        sender=sender,
        body=body,
        services=services,
        at=_provider_time(attributes.get("timestamp")),
    )
    return {"message": outcome}


@router.post("/webhooks/flowroute/dlr", dependencies=[Depends(require_webhook_token)])
async def flowroute_delivery_receipt(
    request: Request,
    services: ServicesDep,
    key: Annotated[str | None, Query(description="the send key the service put in dlr_callback")] = None,
) -> dict[str, str]:
    """Flowroute's delivery receipt: `data.id` is the message, `data.attributes.status` its fate."""
    message_id, attributes = _jsonapi_data(await read_json(request))
    status = _text(attributes, "status", 64, where="data.attributes.")
    send_key = clean_text(key, "key", MAX_PROVIDER_ID) if key is not None else None
    found = await (await services.store()).record_delivery(message_id, status, send_key)
    return {"message": "recorded" if found else "kept until the message is recorded"}


def _public_url(request: Request, settings: Settings) -> str:
    if settings.public_url:
        base = settings.public_url.rstrip("/")
        query = f"?{request.url.query}" if request.url.query else ""
        return f"{base}{request.url.path}{query}"
    return str(request.url)


TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


async def _signed_twilio_form(request: Request, settings: Settings, signature: str | None) -> dict[str, str]:
    if not settings.twilio_auth_token:
        raise ApiError(403, "Twilio webhooks are not configured (TWILIO_AUTH_TOKEN is not set)")
    # Read whole first: the size limit then answers 413, not the parse error below a 400.
    await request.body()
    try:
        form = await request.form()
    except Exception as err:  # noqa: BLE001 - any unreadable form is the caller's fault
        raise InvalidInput("body", "must be form-encoded") from err
    # Twilio's own validator: repeated parameters, the URL with and without its port, and bodySHA256.
    validator = RequestValidator(settings.twilio_auth_token)
    signed = (await request.body()).decode(errors="replace") if "bodySHA256" in request.query_params else form
    if not signature or not validator.validate(_public_url(request, settings), signed, signature):
        raise ApiError(403, "X-Twilio-Signature is missing or wrong")
    return {k: v for k, v in form.items() if isinstance(v, str)}


@router.post("/webhooks/twilio")
async def twilio_inbound(
    request: Request,
    services: ServicesDep,
    x_twilio_signature: Annotated[str | None, Header()] = None,
) -> Response:
    """Twilio's incoming message webhook (form-encoded), its X-Twilio-Signature checked."""
    params = await _signed_twilio_form(request, services.settings, x_twilio_signature)
    sid = _text(params, "MessageSid", MAX_PROVIDER_ID)
    sender = _sender(_text(params, "From", MAX_ADDRESS), "From")
    body = _text(params, "Body", MAX_BODY)
    # Twilio's inbound webhook carries no time of its own: the receipt's time orders opt-outs.
    await handle_inbound(provider="twilio", provider_id=sid, sender=sender, body=body, services=services)
    return Response(TWIML_EMPTY, media_type="text/xml")


@router.post("/webhooks/twilio/status")
async def twilio_status(
    request: Request,
    services: ServicesDep,
    key: Annotated[str | None, Query(description="the send key the service put in StatusCallback")] = None,
    x_twilio_signature: Annotated[str | None, Header()] = None,
) -> dict[str, str]:
    """Twilio's message status callback (StatusCallback), its X-Twilio-Signature checked."""
    params = await _signed_twilio_form(request, services.settings, x_twilio_signature)
    sid = _text(params, "MessageSid", MAX_PROVIDER_ID)
    status = _text(params, "MessageStatus", 64)
    send_key = clean_text(key, "key", MAX_PROVIDER_ID) if key is not None else None
    found = await (await services.store()).record_delivery(sid, status, send_key)
    return {"message": "recorded" if found else "kept until the message is recorded"}
