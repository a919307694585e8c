"""api.routes.webhooks.twilio_signature agrees with Twilio's own library."""

from __future__ import annotations

import pytest
from twilio.request_validator import RequestValidator

from api.routes.webhooks import twilio_signature

CASES = [
    (
        "12345",
        "https://mycompany.com/myapp.php?foo=1&bar=2",
        {
            "CallSid": "CA1234567890ABCDE",
            "Caller": "+14158675309",
            "Digits": "1234",
            "From": "+14158675309",
            "To": "+18005551212",
        },
    ),
    (
        "tok",
        "https://example.com/webhooks/twilio",
        {"MessageSid": "SM123", "From": "+12025550123", "To": "+12025550199", "Body": "Yes! ✓ café & more"},
    ),
    (
        "another-token",
        "http://127.0.0.1:8000/webhooks/twilio?token=abc",
        {"Body": "", "From": "+447700900123", "NumMedia": "0"},
    ),
    ("t", "https://example.com/webhooks/twilio", {}),
    ("tok", "https://example.com/x", {"b": "2", "a": "1", "B": "3", "aa": "0"}),
]


@pytest.mark.parametrize(("token", "url", "params"), CASES)
def test_matches_the_official_library(token: str, url: str, params: dict[str, str]) -> None:
    expected = RequestValidator(token).compute_signature(url, params)
    assert twilio_signature(token, url, params) == expected


def test_twilio_documentation_example() -> None:
    # The example from Twilio's "webhooks security" docs.
    token, url, params = CASES[0]
    assert twilio_signature(token, url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_signature_depends_on_token_url_and_params() -> None:
    token, url, params = CASES[1]
    base = twilio_signature(token, url, params)
    assert twilio_signature(token + "x", url, params) != base
    assert twilio_signature(token, url + "/", params) != base
    assert twilio_signature(token, url, {**params, "Body": "No"}) != base
