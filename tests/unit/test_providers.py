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
    ("status", "retryable", "maybe_sent"),
    [
        (429, True, False),
        (500, True, True),
        (502, True, True),
        (503, True, False),
        (504, True, True),
        (400, False, False),
        (401, False, False),
        (403, False, False),
        (404, False, False),
        (422, False, False),
    ],
)
async def test_flowroute_errors(status: int, retryable: bool, maybe_sent: bool) -> None:
    """429 and 503 say nothing was taken; a 500, 502 or 504 may come after the provider took it."""
    recorder = Recorder(lambda r: httpx.Response(status, json={"errors": [{"detail": "nope"}]}))
    async with client_for(recorder) as client:
        with pytest.raises(ProviderError) as caught:
            await FlowrouteProvider(client, flowroute_settings()).send("12025550123", "x")
    assert caught.value.retryable is retryable
    assert caught.value.maybe_sent is maybe_sent
    assert caught.value.opted_out is False
    assert str(status) in str(caught.value)
    assert len(recorder.requests) == 1  # the provider itself never retries


@pytest.mark.parametrize(
    ("error", "maybe_sent"),
    [
        (httpx.ConnectError("refused"), False),
        (httpx.ConnectTimeout("no answer to the handshake"), False),
        (httpx.PoolTimeout("no free connection"), False),
        (httpx.ReadTimeout("slow"), True),
        (httpx.RemoteProtocolError("cut after the request went out"), True),
        (httpx.ReadError("reset"), True),
    ],
)
async def test_flowroute_unreachable_is_retryable(error: httpx.HTTPError, maybe_sent: bool) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    async with client_for(handler) as client:
        with pytest.raises(ProviderError) as caught:
            await FlowrouteProvider(client, flowroute_settings()).send("12025550123", "x")
    assert caught.value.retryable is True
    assert caught.value.maybe_sent is maybe_sent


async def test_flowroute_callback_carries_the_send_key() -> None:
    recorder = Recorder(lambda r: httpx.Response(202, json={"data": {"id": "mdr2-1"}}))
    settings = flowroute_settings().model_copy(
        update={"public_url": "https://clinic.example/", "webhook_token": "t"}
    )
    async with client_for(recorder) as client:
        await FlowrouteProvider(client, settings).send("12025550123", "x", callback_key="r1:reminder:0")
    sent = json.loads(recorder.requests[0].content)
    assert (
        sent["dlr_callback"] == "https://clinic.example/webhooks/flowroute/dlr?key=r1%3Areminder%3A0&token=t"
    )


async def test_flowroute_lookup_pages_and_matches_to_from_body() -> None:
    from datetime import UTC, datetime

    def mdr(i: int, to: str, body: str, sender: str = "12025550100") -> dict:
        attributes = {"to": to, "from": sender, "body": body, "direction": "outbound"}
        return {"id": f"mdr2-{i}", "type": "message", "attributes": attributes}

    records = [mdr(i, "12025550999", "other") for i in range(250)]
    records[3] = mdr(3, "12025550123", "x")
    records[210] = mdr(210, "12025550123", "x")
    records[211] = mdr(211, "12025550123", "x", sender="12025550777")
    records[212] = mdr(212, "12025550123", "not x")

    def handler(request: httpx.Request) -> httpx.Response:
        offset, limit = int(request.url.params["offset"]), int(request.url.params["limit"])
        assert request.url.params["start_date"].endswith("Z")
        return httpx.Response(200, json={"data": records[offset : offset + limit]})

    recorder = Recorder(handler)
    async with client_for(recorder) as client:
        found = await FlowrouteProvider(client, flowroute_settings()).find_sent(
            "12025550123", "12025550100", "x", datetime.now(UTC)
        )
    assert found == ["mdr2-3", "mdr2-210"]
    assert len(recorder.requests) == 2


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


async def test_flowroute_one_scan_serves_the_doubts_of_a_crash() -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC).replace(microsecond=0)

    def mdr(i: int, to: str, age: int) -> dict:
        stamp = (now - timedelta(seconds=age)).strftime("%Y-%m-%dT%H:%M:%S.00Z")
        attributes = {
            "to": to,
            "from": "12025550100",
            "body": "x",
            "direction": "outbound",
            "timestamp": stamp,
        }
        return {"id": f"mdr2-{i}", "attributes": attributes}

    records = [mdr(1, "12025550123", 120), mdr(2, "12025550123", 10), mdr(3, "12025550124", 5)]
    recorder = Recorder(lambda r: httpx.Response(200, json={"data": records}))
    async with client_for(recorder) as client:
        provider = FlowrouteProvider(client, flowroute_settings())
        since = now - timedelta(seconds=30)
        assert await provider.find_sent("12025550123", "12025550100", "x", since) == ["mdr2-2"]
        assert await provider.find_sent("12025550124", "12025550100", "x", since) == ["mdr2-3"]
        assert len(recorder.requests) == 1, "the second doubt reads the first one's scan"
        # Looking further back than the scan reached takes a new one.
        assert await provider.find_sent("12025550123", "12025550100", "x", now - timedelta(minutes=5)) == [
            "mdr2-1",
            "mdr2-2",
        ]
        assert len(recorder.requests) == 2


async def test_twilio_lookup_reads_pages_until_before_the_claim() -> None:
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    now = datetime.now(UTC).replace(microsecond=0)

    def message(sid: str, body: str, age: int) -> dict:
        created = format_datetime(now - timedelta(seconds=age), usegmt=True)
        return {"sid": sid, "body": body, "date_created": created, "direction": "outbound-api"}

    pages = {
        None: {
            "messages": [message("SM3", "x", 1), message("SM2", "y", 2)],
            "next_page_uri": "/2010-04-01/Accounts/AC123/Messages.json?Page=1",
        },
        "1": {
            "messages": [message("SM1", "x", 30), message("SM0", "x", 3600)],
            "next_page_uri": "/2010-04-01/Accounts/AC123/Messages.json?Page=2",
        },
    }

    def handler(request: httpx.Request) -> httpx.Response:
        if "Page" not in request.url.params:
            assert request.url.params["To"] == "+12025550123" and request.url.params["From"] == "+12025550199"
        return httpx.Response(200, json=pages[request.url.params.get("Page")])

    recorder = Recorder(handler)
    async with client_for(recorder) as client:
        found = await TwilioProvider(client, twilio_settings()).find_sent(
            "12025550123", "12025550199", "x", now - timedelta(seconds=60)
        )
    assert found == ["SM3", "SM1"]
    assert len(recorder.requests) == 2, "the page reaching past the claim is the last one read"


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
