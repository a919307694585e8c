"""SMS providers: Flowroute, Twilio, and a console provider that sends nothing.

Each send's outcome is sorted three ways: accepted (an id), surely not taken (retry freely), or in doubt
(the request went out and no clear answer came back: the provider's records decide before any resend).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from activities.lanes import HttpClient
from settings import Settings

log = logging.getLogger("reminders.providers")

TWILIO_OPTED_OUT = 21610
# Answers that say the provider did not take the message; other 5xx may come after it did.
NOT_TAKEN_STATUSES = frozenset({429, 503})
# The provider's clock and ours may differ; a doubtful send is looked for from this long before its claim.
CLOCK_SKEW = timedelta(seconds=5)
LOOKUP_PAGE = 200
LOOKUP_PAGES = 50
# A scan of Flowroute's message list is reused for this long by other doubtful sends looking back as far.
SCAN_REUSE = 5.0


class ProviderError(Exception):
    """The provider did not clearly take the message. `retryable` says whether asking again may help;
    `maybe_sent` that it may have taken it all the same."""

    def __init__(
        self, message: str, *, retryable: bool, opted_out: bool = False, maybe_sent: bool = False
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.opted_out = opted_out
        self.maybe_sent = maybe_sent


class Provider(Protocol):
    name: str
    counts_segments: bool
    """Whether the provider's rate limit counts segments (Twilio) rather than requests (Flowroute)."""

    def sender_for(self, contact: str) -> str:
        """The sending number this contact hears from."""
        ...

    def pacing_key(self, sender: str) -> str:
        """What the provider's rate limit counts against: the account (Flowroute) or the number (Twilio)."""
        ...

    async def send(self, to: str, body: str, callback_key: str | None = None) -> str:
        """Sends one text and answers the provider's id for it. `callback_key` rides in the delivery
        receipt's URL, so a receipt can name the send even when its id was never recorded."""
        ...

    async def find_sent(self, to: str, sender: str, body: str, since: datetime) -> list[str]:
        """The ids of messages the provider holds to `to` from `sender` with `body`, made since `since`."""
        ...


def sticky_sender(numbers: list[str], contact: str) -> str:
    """Each contact always hears from the same one of several sending numbers."""
    if not numbers:
        return ""
    digest = hashlib.sha256(contact.encode()).digest()
    return numbers[int.from_bytes(digest[:4], "big") % len(numbers)]


def _transport_error(provider: str, err: httpx.HTTPError) -> ProviderError:
    # Nothing reached the provider: no connection, or none free in time.
    not_sent = isinstance(err, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    return ProviderError(f"{provider} unreachable: {err!r}", retryable=True, maybe_sent=not not_sent)


def _raise_for_status(provider: str, response: httpx.Response) -> None:
    code = response.status_code
    if code in NOT_TAKEN_STATUSES:
        raise ProviderError(f"{provider} answered {code}", retryable=True)
    if code >= 500:
        raise ProviderError(f"{provider} answered {code}", retryable=True, maybe_sent=True)
    if code >= 400:
        raise ProviderError(f"{provider} refused the message: {code} {response.text[:300]}", retryable=False)


def _callback_url(settings: Settings, path: str, key: str | None) -> str | None:
    if not settings.public_url or key is None:
        return None
    url = f"{settings.public_url.rstrip('/')}{path}?key={quote(key, safe='')}"
    if settings.webhook_token and "flowroute" in path:
        url += f"&token={quote(settings.webhook_token, safe='')}"
    return url


_JSON_API = {"Content-Type": "application/vnd.api+json"}


class FlowrouteProvider:
    name = "flowroute"
    counts_segments = False

    def __init__(self, client: HttpClient, settings: Settings) -> None:
        self._client = client
        self._settings = settings
        self._url = settings.flowroute_api_url.rstrip("/") + "/messages"
        self._auth = (settings.flowroute_access_key or "", settings.flowroute_secret_key or "")
        # Built once: its header is encoded when it is made, not on every send.
        self._basic_auth = httpx.BasicAuth(*self._auth)
        self._numbers = settings.sending_numbers
        self._scan_lock = asyncio.Lock()
        self._scan: tuple[datetime, float, list[tuple[str, dict[str, Any]]]] | None = None

    def sender_for(self, contact: str) -> str:
        return sticky_sender(self._numbers, contact)

    def pacing_key(self, sender: str) -> str:
        # Flowroute counts every attempt against the account's access key, whichever number sends.
        return "flowroute:" + hashlib.sha256(self._auth[0].encode()).hexdigest()[:16]

    async def send(self, to: str, body: str, callback_key: str | None = None) -> str:
        payload: dict[str, Any] = {"to": to, "from": self.sender_for(to), "body": body}
        callback = _callback_url(self._settings, "/webhooks/flowroute/dlr", callback_key)
        if callback:
            payload["dlr_callback"] = callback
        try:
            response = await self._client.post(
                self._url, json=payload, auth=self._basic_auth, headers=_JSON_API
            )
        except httpx.HTTPError as err:
            raise _transport_error("flowroute", err) from err
        _raise_for_status("flowroute", response)
        try:
            return str(response.json()["data"]["id"])
        except (ValueError, KeyError, TypeError):
            # Accepted, but the answer is unreadable: the message is out, so it must not be sent again.
            log.warning("flowroute accepted a message without a readable id: %s", response.text[:300])
            return "flowroute-unknown"

    async def find_sent(self, to: str, sender: str, body: str, since: datetime) -> list[str]:
        start = since - CLOCK_SKEW
        records = await self._records_since(start)
        return [
            record_id
            for record_id, attributes in records
            if str(attributes.get("to", "")).lstrip("+") == to
            and str(attributes.get("from", "")).lstrip("+") == sender
            and attributes.get("body") == body
            and attributes.get("direction", "outbound") == "outbound"
            and _flowroute_time(attributes.get("timestamp")) >= start.replace(microsecond=0)
        ]

    async def _records_since(self, start: datetime) -> list[tuple[str, dict[str, Any]]]:
        """Flowroute's message list filters by time only (to the second), paged: one scan serves every
        doubtful send of a crash that asks within SCAN_REUSE of it."""
        async with self._scan_lock:
            scan = self._scan
            if scan is None or start < scan[0] or time.monotonic() - scan[1] > SCAN_REUSE:
                scan = (start, time.monotonic(), await self._scan_since(start))
                self._scan = scan
            return scan[2]

    async def _scan_since(self, start: datetime) -> list[tuple[str, dict[str, Any]]]:
        window = {
            "start_date": start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.00Z"),
            "end_date": (datetime.now(UTC) + CLOCK_SKEW).strftime("%Y-%m-%dT%H:%M:%S.00Z"),
        }
        found: list[tuple[str, dict[str, Any]]] = []
        for page in range(LOOKUP_PAGES):
            params: dict[str, str | int] = {**window, "limit": LOOKUP_PAGE, "offset": page * LOOKUP_PAGE}
            try:
                response = await self._client.get(self._url, params=params, auth=self._auth)
            except httpx.HTTPError as err:
                raise _transport_error("flowroute", err) from err
            _raise_for_status("flowroute", response)
            records = response.json().get("data") or []
            found += [(str(r["id"]), r.get("attributes") or {}) for r in records]
            if len(records) < LOOKUP_PAGE:
                break
        return found


def _flowroute_time(value: Any) -> datetime:
    """An MDR's timestamp (ISO 8601, to the second); a record without a readable one counts as recent."""
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return datetime.max.replace(tzinfo=UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class TwilioProvider:
    name = "twilio"
    counts_segments = True

    def __init__(self, client: HttpClient, settings: Settings) -> None:
        self._client = client
        self._settings = settings
        sid = settings.twilio_account_sid or ""
        self._base = settings.twilio_api_url.rstrip("/")
        self._url = f"{self._base}/Accounts/{sid}/Messages.json"
        self._auth = (sid, settings.twilio_auth_token or "")
        self._numbers = settings.sending_numbers

    def sender_for(self, contact: str) -> str:
        return sticky_sender(self._numbers, contact)

    def pacing_key(self, sender: str) -> str:
        # Twilio queues each long code's messages at its own rate (segments a second).
        return f"twilio:{sender}"

    async def send(self, to: str, body: str, callback_key: str | None = None) -> str:
        form = {"To": f"+{to}", "From": f"+{self.sender_for(to)}", "Body": body}
        callback = _callback_url(self._settings, "/webhooks/twilio/status", callback_key)
        if callback:
            form["StatusCallback"] = callback
        try:
            response = await self._client.post(self._url, data=form, auth=self._auth)
        except httpx.HTTPError as err:
            raise _transport_error("twilio", err) from err
        if response.status_code == 400:
            try:
                code = response.json().get("code")
            except ValueError:
                code = None
            if code == TWILIO_OPTED_OUT:
                raise ProviderError("twilio: the number has opted out", retryable=False, opted_out=True)
        _raise_for_status("twilio", response)
        try:
            return str(response.json()["sid"])
        except (ValueError, KeyError, TypeError):
            log.warning("twilio accepted a message without a readable sid: %s", response.text[:300])
            return "twilio-unknown"

    async def find_sent(self, to: str, sender: str, body: str, since: datetime) -> list[str]:
        # Filtered by To and From, newest first; DateSent filters by whole day and a queued message has no
        # send date, so the pages are read by creation time until they pass `since`.
        params: dict[str, Any] | None = {"To": f"+{to}", "From": f"+{sender}", "PageSize": LOOKUP_PAGE}
        url = self._url
        found: list[str] = []
        horizon = since - CLOCK_SKEW
        for _ in range(LOOKUP_PAGES):
            try:
                response = await self._client.get(url, params=params, auth=self._auth)
            except httpx.HTTPError as err:
                raise _transport_error("twilio", err) from err
            _raise_for_status("twilio", response)
            page = response.json()
            older = False
            for message in page.get("messages") or []:
                created = parsedate_to_datetime(message["date_created"])
                if created < horizon:
                    older = True
                    continue
                if message.get("body") == body and message.get("direction", "outbound-api").startswith(
                    "outbound"
                ):
                    found.append(str(message["sid"]))
            next_uri = page.get("next_page_uri")
            if older or not next_uri:
                break
            url, params = self._base.removesuffix("/2010-04-01") + next_uri, None
        return found


class ConsoleProvider:
    name = "console"
    counts_segments = False

    def sender_for(self, contact: str) -> str:
        return "console"

    def pacing_key(self, sender: str) -> str:
        return "console"

    async def send(self, to: str, body: str, callback_key: str | None = None) -> str:
        message_id = f"console-{uuid.uuid4().hex}"
        log.info("SMS to %s (%s):\n%s", to, message_id, body)
        return message_id

    async def find_sent(self, to: str, sender: str, body: str, since: datetime) -> list[str]:
        return []


def provider_from_settings(settings: Settings, client: HttpClient) -> Provider:
    kind = settings.provider
    if kind == "flowroute":
        return FlowrouteProvider(client, settings)
    if kind == "twilio":
        return TwilioProvider(client, settings)
    if kind == "console":
        return ConsoleProvider()
    raise ValueError(f"SMS_PROVIDER must be flowroute, twilio or console, not {kind!r}")
