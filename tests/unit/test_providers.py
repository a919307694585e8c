"""activities.providers against a fake HTTP transport: what is sent, and how every answer is read."""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Callable
from urllib.parse import parse_qs

import httpx
import pytest

from activities.providers import (
    ConsoleProvider,
    FlowrouteProvider,
    ProviderError,
    TwilioProvider,
    provider_from_settings,
    sticky_sender,
)
from settings import Settings

Handler = Callable[[httpx.Request], httpx.Response]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def flowroute_settings(numbers: str = "12025550100") -> Settings:
    return Settings(
        _env_file=None,
        sms_provider="flowroute",
        flowroute_access_key="ak",
        flowroute_secret_key="sk",
        flowroute_number=numbers,
        flowroute_api_url="http://flowroute.test/v2.1/",
    )


def twilio_settings(numbers: str = "+12025550199") -> Settings:
    return Settings(
        _env_file=None,
        sms_provider="twilio",
        twilio_account_sid="AC123",
        twilio_auth_token="tok",
        twilio_number=numbers,
        twilio_api_url="http://twilio.test/2010-04-01",
    )


class Recorder:
    def __init__(self, answer: Handler) -> None:
        self.requests: list[httpx.Request] = []
        self._answer = answer

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self._answer(request)


def client_for(handler: Handler) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


# --- Flowroute ---------------------------------------------------------------------------------------


async def test_flowroute_request_and_id() -> None:
    recorder = Recorder(
        lambda r: httpx.Response(202, json={"data": {"id": "mdr2-abc123", "type": "message"}})
    )
    async with client_for(recorder) as client:
        message_id = await FlowrouteProvider(client, flowroute_settings()).send("12025550123", "Hi\nthere")
    assert message_id == "mdr2-abc123"
    [request] = recorder.requests
    assert request.method == "POST"
    assert str(request.url) == "http://flowroute.test/v2.1/messages"
    assert request.headers["Authorization"] == basic("ak", "sk")
    assert request.headers["Content-Type"] == "application/vnd.api+json"
    assert json.loads(request.content) == {"to": "12025550123", "from": "12025550100", "body": "Hi\nthere"}


async def test_flowroute_accepted_without_a_readable_id_is_still_sent() -> None:
    recorder = Recorder(lambda r: httpx.Response(202, text="accepted"))
    async with client_for(recorder) as client:
        assert (
            await FlowrouteProvider(client, flowroute_settings()).send("12025550123", "x")
            == "flowroute-unknown"
        )


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (422, False),
    ],
)
async def test_flowroute_errors(status: int, retryable: bool) -> None:
    recorder = Recorder(lambda r: httpx.Response(status, json={"errors": [{"detail": "nope"}]}))
    async with client_for(recorder) as client:
        with pytest.raises(ProviderError) as caught:
            await FlowrouteProvider(client, flowroute_settings()).send("12025550123", "x")
    assert caught.value.retryable is retryable
    assert caught.value.opted_out is False
    assert str(status) in str(caught.value)
    assert len(recorder.requests) == 1  # the provider itself never retries


@pytest.mark.parametrize(
    "error", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("cut")]
)
async def test_flowroute_unreachable_is_retryable(error: httpx.HTTPError) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    async with client_for(handler) as client:
        with pytest.raises(ProviderError) as caught:
            await FlowrouteProvider(client, flowroute_settings()).send("12025550123", "x")
    assert caught.value.retryable is True


async def test_flowroute_sender_is_sticky_among_several_numbers() -> None:
    recorder = Recorder(lambda r: httpx.Response(202, json={"data": {"id": "mdr2-1"}}))
    numbers = ["12025550100", "12025550101", "12025550102"]
    settings = flowroute_settings(" +12025550100, 12025550101 ,12025550102")
    async with client_for(recorder) as client:
        provider = FlowrouteProvider(client, settings)
        for contact in ("12025550123", "12025550124", "12025550123"):
            await provider.send(contact, "x")
    senders = [json.loads(r.content)["from"] for r in recorder.requests]
    assert senders[0] == senders[2] == sticky_sender(numbers, "12025550123")
    assert senders[1] == sticky_sender(numbers, "12025550124")
    assert set(senders) <= set(numbers)


# --- Twilio ------------------------------------------------------------------------------------------


async def test_twilio_request_and_sid() -> None:
    recorder = Recorder(lambda r: httpx.Response(201, json={"sid": "SM0123456789abcdef", "status": "queued"}))
    async with client_for(recorder) as client:
        sid = await TwilioProvider(client, twilio_settings()).send("12025550123", "Hi & bye\nok")
    assert sid == "SM0123456789abcdef"
    [request] = recorder.requests
    assert request.method == "POST"
    assert str(request.url) == "http://twilio.test/2010-04-01/Accounts/AC123/Messages.json"
    assert request.headers["Authorization"] == basic("AC123", "tok")
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = parse_qs(request.content.decode(), strict_parsing=True)
    assert form == {"To": ["+12025550123"], "From": ["+12025550199"], "Body": ["Hi & bye\nok"]}


async def test_twilio_opted_out_number() -> None:
    recorder = Recorder(
        lambda r: httpx.Response(
            400, json={"code": 21610, "message": "Attempt to send to unsubscribed recipient"}
        )
    )
    async with client_for(recorder) as client:
        with pytest.raises(ProviderError) as caught:
            await TwilioProvider(client, twilio_settings()).send("12025550123", "x")
    assert caught.value.opted_out is True
    assert caught.value.retryable is False


@pytest.mark.parametrize(
    ("status", "payload", "retryable"),
    [
        (400, {"code": 21211, "message": "Invalid 'To' Phone Number"}, False),
        (400, None, False),
        (401, {"code": 20003}, False),
        (404, {"code": 20404}, False),
        (429, {"code": 20429}, True),
        (500, None, True),
        (503, None, True),
    ],
)
async def test_twilio_errors(status: int, payload: dict | None, retryable: bool) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if payload is None:
            return httpx.Response(status, text="<html>oops</html>")
        return httpx.Response(status, json=payload)

    async with client_for(handler) as client:
        with pytest.raises(ProviderError) as caught:
            await TwilioProvider(client, twilio_settings()).send("12025550123", "x")
    assert caught.value.retryable is retryable
    assert caught.value.opted_out is False


async def test_twilio_unreachable_is_retryable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with client_for(handler) as client:
        with pytest.raises(ProviderError) as caught:
            await TwilioProvider(client, twilio_settings()).send("12025550123", "x")
    assert caught.value.retryable is True and caught.value.opted_out is False


# --- choosing a provider and a sender ----------------------------------------------------------------


def test_sticky_sender_is_stable_and_spreads() -> None:
    numbers = ["12025550100", "12025550101", "12025550102"]
    contacts = [f"1303555{i:04d}" for i in range(1000)]
    chosen = [sticky_sender(numbers, c) for c in contacts]
    assert chosen == [sticky_sender(list(numbers), c) for c in contacts]
    counts = Counter(chosen)
    assert set(counts) == set(numbers)
    assert min(counts.values()) >= 250, counts


def test_sticky_sender_edge_cases() -> None:
    assert sticky_sender([], "12025550123") == ""
    assert sticky_sender(["12025550100"], "12025550123") == "12025550100"


async def test_provider_from_settings() -> None:
    async with httpx.AsyncClient() as client:
        assert isinstance(provider_from_settings(flowroute_settings(), client), FlowrouteProvider)
        assert isinstance(provider_from_settings(twilio_settings(), client), TwilioProvider)
        console = Settings(_env_file=None, sms_provider="console")
        assert isinstance(provider_from_settings(console, client), ConsoleProvider)
        with pytest.raises(ValueError, match="SMS_PROVIDER"):
            provider_from_settings(Settings(_env_file=None, sms_provider="carrier-pigeon"), client)


def test_provider_default_follows_the_flowroute_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SMS_PROVIDER", "FLOWROUTE_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert Settings(_env_file=None).provider == "console"
    assert Settings(_env_file=None, flowroute_access_key="ak").provider == "flowroute"
    assert Settings(_env_file=None, sms_provider="TWILIO").provider == "twilio"


async def test_console_provider_sends_nothing_and_answers_an_id() -> None:
    first = await ConsoleProvider().send("12025550123", "x")
    second = await ConsoleProvider().send("12025550123", "x")
    assert first.startswith("console-") and first != second
