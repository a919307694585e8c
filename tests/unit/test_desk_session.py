"""The front desk's session cookie and CSRF tokens, and its sign-in and failure pages (no stack: with no
DATABASE_URL every page that needs PostgreSQL answers the friendly 503 page)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.desk import session as cookies
from api.main import create_app
from settings import Settings

SECRET = cookies.desk_secret("a server-side secret", [])
KEYS = ["key-one", "key-two"]
NOW = 1_800_000_000


def test_a_signed_in_cookie_reads_back_and_holds_no_key():
    value = cookies.new_cookie(SECRET, NOW, "key-two")
    assert "key-two" not in value
    session = cookies.read_cookie(value, SECRET, KEYS, NOW + 60)
    assert session is not None and session.signed_in


def test_an_anonymous_cookie_is_not_signed_in():
    session = cookies.read_cookie(cookies.new_cookie(SECRET, NOW), SECRET, KEYS, NOW)
    assert session is not None and not session.signed_in


@pytest.mark.parametrize(
    "change",
    [
        lambda v: v[:-1] + ("0" if v[-1] != "0" else "1"),  # the MAC altered
        lambda v: v.replace(".key.", ".anon."),  # the kind changed
        lambda v: v.replace("v1.", "v2.", 1),
        lambda v: v + ".x",
        lambda v: "",
        lambda v: "v1." + "a" * 400,
    ],
)
def test_an_altered_cookie_is_refused(change):
    value = cookies.new_cookie(SECRET, NOW, "key-one")
    assert cookies.read_cookie(change(value), SECRET, KEYS, NOW) is None


def test_a_cookie_ends_with_its_age_its_key_or_its_secret():
    value = cookies.new_cookie(SECRET, NOW, "key-one")
    assert cookies.read_cookie(value, SECRET, KEYS, NOW + cookies.MAX_AGE + 1) is None
    assert cookies.read_cookie(value, SECRET, KEYS, NOW - 10) is None  # issued in the future
    assert cookies.read_cookie(value, SECRET, ["key-two"], NOW) is None  # its key was taken out
    assert cookies.read_cookie(value, cookies.desk_secret("another", []), KEYS, NOW) is None


def test_the_secret_without_desk_secret_follows_the_keys_and_survives_a_restart():
    assert cookies.desk_secret(None, ["a", "b"]) == cookies.desk_secret(None, ["b", "a"])
    assert cookies.desk_secret(None, ["a"]) != cookies.desk_secret(None, ["b"])
    assert cookies.desk_secret("set", ["a"]) != cookies.desk_secret(None, ["a"])


def test_csrf_tokens_belong_to_one_session():
    one = cookies.read_cookie(cookies.new_cookie(SECRET, NOW, "key-one"), SECRET, KEYS, NOW)
    two = cookies.read_cookie(cookies.new_cookie(SECRET, NOW, "key-one"), SECRET, KEYS, NOW)
    assert one is not None and two is not None and one.nonce != two.nonce
    token = cookies.csrf_token(SECRET, one)
    assert cookies.csrf_ok(SECRET, one, token)
    assert not cookies.csrf_ok(SECRET, two, token)
    assert not cookies.csrf_ok(SECRET, one, None)
    assert not cookies.csrf_ok(SECRET, one, token[:-1])


def test_key_matches_only_a_configured_key():
    assert cookies.key_matches("key-two", KEYS) == "key-two"
    assert cookies.key_matches("key-three", KEYS) is None
    assert cookies.key_matches("", []) is None


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, html
    return found.group(1)


def test_sign_in_csrf_and_the_friendly_503_page():
    app = create_app(Settings(api_keys="key-one", database_url=None, _env_file=None))
    with TestClient(app, follow_redirects=False) as client:
        assert client.get("/app").headers["location"] == "/app/login?next=/app"
        login = client.get("/app/login", params={"next": "https://elsewhere.example/"})
        cookie = login.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/app" in cookie
        assert 'name="next" value="/app"' in login.text  # never a redirect to another site
        policy = login.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        token = _csrf(login.text)
        refused = client.post("/app/login", data={"csrf": "forged", "key": "key-one", "next": "/app"})
        assert refused.status_code == 303 and refused.headers["location"].startswith("/app/login")
        wrong = client.post("/app/login", data={"csrf": token, "key": "nope", "next": "/app"})
        assert wrong.status_code == 401 and "not one of API_KEYS" in wrong.text
        signed = client.post("/app/login", data={"csrf": token, "key": "key-one", "next": "/app/inbox"})
        assert signed.status_code == 303 and signed.headers["location"] == "/app/inbox"
        assert "key-one" not in signed.headers["set-cookie"]

        down = client.get("/app")
        assert down.status_code == 503
        assert "cannot reach a service" in down.text and "Traceback" not in down.text
        live = client.get("/app/day/live")
        assert live.status_code == 503 and live.headers["content-type"].startswith("text/plain")
        # A form without its token changes nothing.
        assert client.post("/app/logout", data={}).status_code == 403
        assert client.post("/app/reminder/" + "a" * 32 + "/resend", data={"csrf": "x"}).status_code == 403
        # The JSON API keeps its own answers.
        assert client.get("/reminder").status_code == 401


def test_with_api_keys_unset_the_desk_is_open_and_says_so():
    app = create_app(Settings(api_keys=None, database_url=None, _env_file=None))
    with TestClient(app, follow_redirects=False) as client:
        first = client.get("/app")
        assert first.headers["location"].startswith("/app/login")
        opened = client.get(first.headers["location"])
        assert opened.status_code == 303 and opened.headers["location"] == "/app/login?next=%2Fapp&check=1"
        # The session came back: on to the page asked for.
        checked = client.get(opened.headers["location"])
        assert checked.status_code == 303 and checked.headers["location"] == "/app"
        page = client.get("/app")
        assert page.status_code == 503  # no PostgreSQL here, but past the sign-in
        assert "API_KEYS is not set" in page.text


def test_open_mode_without_cookies_stops_at_a_page_that_says_so():
    """A client that sends no cookie back (curl without a jar) is told why, not redirected in a loop."""
    app = create_app(Settings(api_keys=None, database_url=None, _env_file=None))
    with TestClient(app, follow_redirects=False) as client:
        hops = []
        url = "/app"
        for _ in range(6):
            client.cookies.clear()
            response = client.get(url)
            hops.append(response.status_code)
            if response.status_code != 303:
                break
            url = response.headers["location"]
        assert hops == [303, 303, 400]
        assert "allow cookies" in response.text


def test_no_template_carries_a_script_the_policy_would_block():
    """The pages' policy allows only /app/static/desk.js: inline scripts and handlers would not run."""
    templates = Path(__file__).resolve().parents[2] / "api" / "desk" / "templates"
    for template in templates.glob("*.html"):
        text = template.read_text()
        assert re.findall(r"<script(?![^>]*\ssrc=)[^>]*>", text) == [], template.name
        assert not re.search(r"\son[a-z]+=", text), template.name
        assert "style=" not in text, template.name
