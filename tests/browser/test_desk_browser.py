"""The front desk in a real browser (Playwright driving Debian's chromium) against the real stack, with an
API key so signing in is part of it: create an appointment, watch it go out and turn confirmed when the
contact answers Yes, send it again, answer the inbox, record an opt-out, read it all at a phone's width,
and keep working across a restart of the stack."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from devstack.fakes import FakeProvider
from devstack.harness import Stack, flowroute_env, new_number, wait_until
from tests.e2e.test_replies_e2e import flowroute_inbound

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
KEY = "front-desk-test-key-2f9c"
NEW_YORK = ZoneInfo("America/New_York")
ROOT = Path(__file__).resolve().parents[2]
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - the dev extra installs it
    sync_playwright = None  # type: ignore[assignment]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        sync_playwright is None, reason="playwright is not installed (pip install -e '.[dev]')"
    ),
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"no browser at {CHROMIUM}: `make browser` installs Debian's chromium and runs this test",
    ),
]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    provider = FakeProvider()
    provider.start()
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, fake: FakeProvider) -> Iterator[Stack]:
    s = Stack(
        Path(tmp_path_factory.mktemp("desk")),
        flowroute_env(
            fake,
            API_KEYS=f"another-key,{KEY}",
            ORG_NAME="West Side Clinic",
            ORG_TIMEZONE="America/New_York",
            PUBLIC_URL="auto",
        ),
    )
    s.start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    context.set_default_timeout(20_000)
    p = context.new_page()
    refused: list[str] = []
    # The desk's Content-Security-Policy allows its own script and stylesheet only: anything it blocks
    # (an inline script left in a template) is a part of a page that silently stopped working.
    p.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    yield p
    context.close()
    assert not refused, refused


def shot(page: Page, name: str, tmp_path: Path) -> None:
    """Screenshots land in tmp_path; with DESK_SCREENSHOTS=1 also in docs/ (the README shows those)."""
    page.screenshot(path=str(tmp_path / name), full_page=True)
    if os.environ.get("DESK_SCREENSHOTS"):
        page.screenshot(path=str(ROOT / "docs" / name), full_page=True)


def open_day_of(page: Page, when: datetime) -> None:
    """The Day link (today, where the desk is), then on to the appointment's own day: one made 30 minutes
    ahead after 23:30 is tomorrow's."""
    page.get_by_role("link", name="Day").click()
    if page.get_by_label("Day", exact=True).input_value() != when.date().isoformat():
        page.get_by_role("link", name="Next →").click()
    expect(page.get_by_label("Day", exact=True)).to_have_value(when.date().isoformat())


def sign_in(page: Page, stack: Stack) -> None:
    page.goto(f"{stack.url}/app")
    expect(page).to_have_url(re.compile(r"/app/login\?next="))
    page.get_by_label("API key").fill(KEY)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("h1")).not_to_have_text("Sign in")


def fits_the_width(page: Page, width: int) -> bool:
    return bool(page.evaluate(f"document.documentElement.scrollWidth <= {width}"))


def unlabelled_fields(page: Page) -> list[str]:
    return page.evaluate(
        "[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]"
        ".filter(e => !e.labels || e.labels.length === 0).map(e => e.name)"
    )


def test_a_day_at_the_front_desk(page: Page, stack: Stack, fake: FakeProvider, tmp_path: Path):
    # Sign-in: a wrong key is refused, the right one opens the desk; the cookie holds no key.
    page.goto(f"{stack.url}/app/inbox")
    expect(page).to_have_url(re.compile(r"/app/login"))
    page.get_by_label("API key").fill("not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".error")).to_contain_text("not one of API_KEYS")
    page.get_by_label("API key").fill(KEY)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/app/inbox$"))
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "desk_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and KEY not in cookie["value"]

    # A new appointment: the API's 400 message beside the field, then created.
    number = new_number()
    page.get_by_role("link", name="New").click()
    assert unlabelled_fields(page) == []
    page.get_by_role("button", name="Create appointment").click()
    expect(page.locator("#n-contact_number-error")).to_have_text("contact_number: is required")
    soon = datetime.now(NEW_YORK) + timedelta(minutes=30)
    page.get_by_label("Appointment time").fill(soon.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Contact number").fill("555-1234")
    page.get_by_role("button", name="Create appointment").click()
    error = page.locator("#n-contact_number-error")
    expect(error).to_have_text(
        "contact_number: must be 11 digits in the form 1XXXXXXXXXX, or E.164 such as +442071234567"
    )
    expect(page.get_by_label("Contact number")).to_be_focused()
    page.get_by_label("Contact number").fill(number)
    page.get_by_label("Remind hours before").fill("1")
    page.get_by_label("Location").fill("West Side Clinic, room 4")
    page.get_by_label("With").fill("Dr Smith")
    page.get_by_role("button", name="Create appointment").click()
    expect(page.locator(".said")).to_have_text("Appointment created; its reminder is scheduled.")
    reminder_url = page.url.split("?")[0]
    reminder_id = reminder_url.rsplit("/", 1)[1]

    # It goes out (its notify time has passed) and the page shows it without a reload, then delivered.
    fake.wait_for(number, 1)
    messages = page.locator("#messages")
    expect(messages).to_contain_text("You have an appointment on")
    expect(messages.locator(".delivery")).to_have_text("delivered")
    expect(page.locator("#reminder-status")).to_have_text("awaiting reply")

    # The contact answers Yes: the status changes on the open page.
    flowroute_inbound(stack, number, "Yes")
    expect(page.locator("#reminder-status")).to_have_text("confirmed")
    fake.wait_for(number, 2)

    # Sent again on purpose: its own purpose, recorded as such.
    page.get_by_role("button", name="Send again now").click()
    expect(page.locator(".said")).to_contain_text(re.compile("sent again|on its way again"))
    fake.wait_for(number, 3)
    assert "You have an appointment on" in fake.to(number)[2].text
    expect(messages.locator(".msg.outbound").last).to_contain_text("resend")

    # The day view: the appointment, colour-coded and counted, and found by its number.
    open_day_of(page, soon)
    row = page.locator(f"tr[data-reminder='{reminder_id}']")
    expect(row.locator(".status")).to_have_text("confirmed")
    expect(page.locator(".rate")).to_contain_text("confirmed of 1 sent")
    expect(page.locator("#rate")).to_have_text("100%")
    page.get_by_label("Number").fill(number[-6:])
    page.get_by_role("button", name="Show").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    page.get_by_label("Show", exact=True).select_option("week")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("h1")).to_contain_text("Week of")
    expect(row.locator(".status")).to_have_text("confirmed")
    page.get_by_label("Status").select_option("declined")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("tbody tr")).to_have_count(0)
    page.goto(f"{stack.url}/app")

    # A reply nobody understood: the badge on the open day view counts it within seconds.
    flowroute_inbound(stack, number, "can I come at 3 instead?")
    expect(page.locator("#inbox-badge")).to_have_text("1")
    late = new_number()
    flowroute_inbound(stack, late, "Yes")  # nothing of this number waits for an answer
    expect(page.locator("#inbox-badge")).to_have_text("2")
    shot(page, "desk-day.png", tmp_path)

    # The inbox, newest first: answer one from our number, mark the other done.
    page.get_by_role("link", name=re.compile("Inbox")).click()
    items = page.locator("ol.inbox > li")
    expect(items).to_have_count(2)
    expect(items.first).to_contain_text(late)
    expect(items.nth(1)).to_contain_text("can I come at 3 instead?")
    page.set_viewport_size({"width": 390, "height": 844})
    shot(page, "desk-inbox.png", tmp_path)
    page.set_viewport_size({"width": 1100, "height": 800})
    item = items.nth(1)
    item.get_by_label("Answer from our number").fill("Yes, 3 pm works. See you then!")
    item.get_by_role("button", name="Send answer").click()
    expect(page.locator(".said")).to_contain_text(re.compile("Your answer (was sent|is on its way)"))
    fake.wait_for(number, 5)
    assert fake.to(number)[4].text == "[West Side Clinic]\nYes, 3 pm works. See you then!"
    expect(items).to_have_count(1)
    items.first.get_by_role("button", name="Mark done").click()
    expect(page.locator(".said")).to_have_text("Marked done.")
    expect(page.locator("#inbox-badge")).to_have_text("0")
    expect(page.get_by_text("Nothing is waiting.")).to_be_visible()

    # An opt-out taken by phone, with its note; then the reminder is not sent again.
    page.get_by_role("link", name="Opt-outs").click()
    page.get_by_label("Contact number").fill("12")
    page.get_by_role("button", name="Record opt-out").click()
    expect(page.locator("#o-number-error")).to_contain_text("contact_number: must be 11 digits")
    page.get_by_label("Contact number").fill(number)
    page.get_by_label("Note").fill("Asked by phone not to be texted")
    page.get_by_role("button", name="Record opt-out").click()
    expect(page.locator(".said")).to_contain_text("Opt-out recorded")
    listed = page.locator("tbody tr", has_text=number)
    expect(listed).to_contain_text("staff")
    expect(listed).to_contain_text("Asked by phone not to be texted")
    page.goto(reminder_url)
    expect(page.locator("#reminder-status")).to_have_text("opted out")

    # A phone's width: every page fits 390 px, every field has a label.
    page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/app", "/app/inbox", "/app/opt-outs", "/app/new", f"/app/reminder/{reminder_id}"):
        page.goto(f"{stack.url}{path}")
        assert fits_the_width(page, 390), path
        assert unlabelled_fields(page) == [], path
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()

    # Signing out ends the session.
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator(".said")).to_have_text("You are signed out.")
    page.goto(f"{stack.url}/app")
    expect(page).to_have_url(re.compile(r"/app/login"))


def test_an_open_page_survives_a_restart_of_the_stack(page: Page, stack: Stack, fake: FakeProvider):
    sign_in(page, stack)
    number = new_number()
    with stack.client(headers={"Authorization": f"Bearer {KEY}"}) as http:
        soon = datetime.now(NEW_YORK) + timedelta(minutes=30)
        made = http.post(
            "/reminder",
            json={
                "contact_number": number,
                "appointment_time": soon.strftime("%Y-%m-%dT%H:%M"),
                "timezone": "America/New_York",
                "notify_window": 1,
            },
        )
        assert made.status_code == 200, made.text
    reminder_id = made.json()["reminder_id"]
    fake.wait_for(number, 1)
    page.goto(f"{stack.url}/app/reminder/{reminder_id}")
    expect(page.locator("#reminder-status")).to_have_text("awaiting reply")

    stack.stop()
    expect(page.locator("#conn")).to_have_text("Connection lost; retrying…")
    stack.start()
    expect(page.locator("#conn")).to_have_text("", timeout=60_000)
    # The polling page picks up a change made after the restart, still signed in.
    flowroute_inbound(stack, number, "Yes")
    expect(page.locator("#reminder-status")).to_have_text("confirmed")
    page.reload()
    expect(page.locator("h1")).to_contain_text("Appointment")
    open_day_of(page, soon)
    expect(page.locator(f"tr[data-reminder='{reminder_id}'] .status")).to_have_text("confirmed")
    wait_until(lambda: len(fake.to(number)) == 2, what="the confirmation")


def test_reschedule_and_delete_from_the_reminder_page(page: Page, stack: Stack):
    sign_in(page, stack)
    later = datetime.now(NEW_YORK).replace(second=0, microsecond=0) + timedelta(days=3)
    with stack.client(headers={"Authorization": f"Bearer {KEY}"}) as http:
        made = http.post(
            "/reminder",
            json={
                "contact_number": new_number(),
                "appointment_time": later.strftime("%Y-%m-%dT%H:%M"),
                "timezone": "America/New_York",
                "notify_window": 24,
            },
        )
        assert made.status_code == 200, made.text
    reminder_id = made.json()["reminder_id"]
    page.goto(f"{stack.url}/app/reminder/{reminder_id}")
    expect(page.locator("#reminder-status")).to_have_text("scheduled")
    expect(page.get_by_label("Appointment time")).to_have_value(later.strftime("%Y-%m-%dT%H:%M"))

    page.get_by_label("Time zone").fill("Mars/Olympus")
    page.get_by_role("button", name="Reschedule").click()
    expect(page.locator("#change-error")).to_have_text(
        "timezone: 'Mars/Olympus' is not a known IANA time zone"
    )
    moved = later + timedelta(days=1)
    page.get_by_label("Time zone").fill("America/New_York")
    page.get_by_label("Appointment time").fill(moved.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Remind hours before").fill("2")
    page.get_by_role("button", name="Reschedule").click()
    expect(page.locator(".said")).to_have_text("Appointment rescheduled.")
    expect(page.locator("h1")).to_contain_text(moved.strftime("%A %d %B %Y, %H:%M"))
    expect(page.locator(".facts")).to_contain_text("(2 h before)")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete appointment").click()
    expect(page.locator(".said")).to_have_text("Appointment deleted; nothing more will be sent for it.")
    expect(page.locator(f"tr[data-reminder='{reminder_id}']")).to_have_count(0)
    page.goto(f"{stack.url}/app/reminder/{reminder_id}")
    expect(page.locator("h1")).to_have_text("Not found")
