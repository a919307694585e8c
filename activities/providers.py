"""SMS providers: Flowroute, Twilio, and a console provider that sends nothing."""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Protocol

import httpx

from settings import Settings

log = logging.getLogger("reminders.providers")

TWILIO_OPTED_OUT = 21610


class ProviderError(Exception):
    """The provider did not take the message. `retryable` says whether asking again may help."""

    def __init__(self, message: str, *, retryable: bool, opted_out: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.opted_out = opted_out


class Provider(Protocol):
    name: str

    def sender_for(self, contact: str) -> str:
        """The sending number this contact hears from; sends are paced per sender."""
        ...

    async def send(self, to: str, body: str) -> str:
        """Sends one text and answers the provider's id for it."""
        ...


def sticky_sender(numbers: list[str], contact: str) -> str:
    """Each contact always hears from the same one of several sending numbers."""
    if not numbers:
        return ""
    digest = hashlib.sha256(contact.encode()).digest()
    return numbers[int.from_bytes(digest[:4], "big") % len(numbers)]


def _raise_for_status(provider: str, response: httpx.Response) -> None:
    if response.status_code == 429 or response.status_code >= 500:
        raise ProviderError(f"{provider} answered {response.status_code}", retryable=True)
    if response.status_code >= 400:
        raise ProviderError(
            f"{provider} refused the message: {response.status_code} {response.text[:300]}", retryable=False
        )


class FlowrouteProvider:
    name = "flowroute"

    def __init__(self, client: httpx.AsyncClient, settings: Settings) -> None:
        self._client = client
        self._url = settings.flowroute_api_url.rstrip("/") + "/messages"
        self._auth = (settings.flowroute_access_key or "", settings.flowroute_secret_key or "")
        self._numbers = settings.sending_numbers

    def sender_for(self, contact: str) -> str:
        return sticky_sender(self._numbers, contact)

    async def send(self, to: str, body: str) -> str:
        payload = {"to": to, "from": self.sender_for(to), "body": body}
        try:
            response = await self._client.post(
                self._url,
                json=payload,
                auth=self._auth,
                headers={"Content-Type": "application/vnd.api+json"},
            )
        except httpx.HTTPError as err:
            raise ProviderError(f"flowroute unreachable: {err!r}", retryable=True) from err
        _raise_for_status("flowroute", response)
        try:
            return str(response.json()["data"]["id"])
        except (ValueError, KeyError, TypeError):
            # Accepted, but the answer is unreadable: the message is out, so it must not be sent again.
            log.warning("flowroute accepted a message without a readable id: %s", response.text[:300])
            return "flowroute-unknown"


class TwilioProvider:
    name = "twilio"

    def __init__(self, client: httpx.AsyncClient, settings: Settings) -> None:
        self._client = client
        sid = settings.twilio_account_sid or ""
        self._url = f"{settings.twilio_api_url.rstrip('/')}/Accounts/{sid}/Messages.json"
        self._auth = (sid, settings.twilio_auth_token or "")
        self._numbers = settings.sending_numbers

    def sender_for(self, contact: str) -> str:
        return sticky_sender(self._numbers, contact)

    async def send(self, to: str, body: str) -> str:
        form = {"To": f"+{to}", "From": f"+{self.sender_for(to)}", "Body": body}
        try:
            response = await self._client.post(self._url, data=form, auth=self._auth)
        except httpx.HTTPError as err:
            raise ProviderError(f"twilio unreachable: {err!r}", retryable=True) from err
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


class ConsoleProvider:
    name = "console"

    def sender_for(self, contact: str) -> str:
        return "console"

    async def send(self, to: str, body: str) -> str:
        message_id = f"console-{uuid.uuid4().hex}"
        log.info("SMS to %s (%s):\n%s", to, message_id, body)
        return message_id


def provider_from_settings(settings: Settings, client: httpx.AsyncClient) -> Provider:
    kind = settings.provider
    if kind == "flowroute":
        return FlowrouteProvider(client, settings)
    if kind == "twilio":
        return TwilioProvider(client, settings)
    if kind == "console":
        return ConsoleProvider()
    raise ValueError(f"SMS_PROVIDER must be flowroute, twilio or console, not {kind!r}")
