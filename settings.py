"""Every setting of the service, read from the environment (and a `.env` file) once, on first use."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from events.signing import secret_bytes
from rules.schedule import QuietHours

DEFAULT_REMINDER = (
    "[{org}]\nYou have an appointment on {when}{context}. Please reply 'Yes' to confirm, or 'No' to cancel."
)
DEFAULT_CONFIRMATION = "[{org}]\nThank you! Your appointment has been marked confirmed."
DEFAULT_CANCELLATION = "[{org}]\nThank you! Your appointment has been marked canceled."
DEFAULT_UNPARSABLE = (
    "[{org}]\nSorry, we did not understand your response. Please reply 'Yes' to confirm, or 'No' to cancel."
)
DEFAULT_OPT_OUT = "[{org}]\nYou have been unsubscribed and will receive no more messages from us. Reply START to resubscribe."
DEFAULT_OPT_IN = "[{org}]\nYou have been resubscribed and will receive appointment reminders again."
DEFAULT_HELP = (
    "[{org}]\nAppointment reminders. Reply 'Yes' to confirm or 'No' to cancel an appointment. "
    "Help: {contact}. Reply STOP to opt out. Msg & data rates may apply."
)
# Without ORG_CONTACT the default HELP text has no contact to name (CTIA asks for one: a warning at start).
DEFAULT_HELP_NO_CONTACT = (
    "[{org}]\nAppointment reminders. Reply 'Yes' to confirm or 'No' to cancel an appointment. "
    "Reply STOP to opt out. Msg & data rates may apply."
)
DEFAULT_OPT_OUT_LINE = "Reply STOP to opt out."
DEFAULT_STAFF_REPLY = "[{org}]\n{body}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    data_dir: Path = Path(".data")

    temporal_address: str | None = None
    temporal_namespace: str = "default"
    temporal_api_key: str | None = None
    temporal_tls: bool = False
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    temporal_tls_ca: Path | None = None
    temporal_dev_port: int = 7233
    temporal_ui_port: int = 8233
    temporal_sqlite_synchronous: str = "FULL"
    temporal_dev_cache_size: int = 5000
    task_queue: str = "reminders"

    database_url: str | None = None
    payload_encryption_key: str | None = None

    sms_provider: str | None = None
    flowroute_access_key: str | None = None
    flowroute_secret_key: str | None = None
    flowroute_number: str = ""
    flowroute_api_url: str = "https://api.flowroute.com/v2.1"
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_number: str = ""
    twilio_api_url: str = "https://api.twilio.com/2010-04-01"
    public_url: str | None = None

    org_name: str = "Your Org Name"
    org_contact: str | None = None
    """A phone number or URL where people reach the organisation; named in the HELP answer."""
    language_default: str = "en_us"
    msg_reminder: str = DEFAULT_REMINDER
    msg_confirmation: str = DEFAULT_CONFIRMATION
    msg_cancellation: str = DEFAULT_CANCELLATION
    msg_unparsable: str = DEFAULT_UNPARSABLE
    msg_opt_out: str = DEFAULT_OPT_OUT
    msg_opt_in: str = DEFAULT_OPT_IN
    msg_help: str = DEFAULT_HELP
    msg_staff_reply: str = DEFAULT_STAFF_REPLY
    """A reply written by staff from the inbox; {body} is their text."""
    msg_opt_out_line: str = DEFAULT_OPT_OUT_LINE
    """Ends the first text sent to a number and "did not understand"; empty turns it off."""
    smart_encoding: bool = True

    api_keys: str | None = None
    desk_secret: str | None = None
    """Signs the front desk's session cookies (default: derived from API_KEYS, so it survives restarts)."""
    webhook_token: str | None = None

    send_rate_per_second: float | None = None
    """Flowroute: attempts a second per account (default 5); Twilio: segments a second per number (default 1)."""
    provider_timeout: float = 10.0
    send_doubt_settle: float = 30.0
    """A claimed send with no answer is looked up at the provider this long after its call began."""
    quiet_hours: str | None = "21:00-08:00"
    """No reminder goes out in this daily window of the recipient's local time; `off` turns it off."""
    event_webhook_url: str | None = None
    """Where events are POSTed (Standard Webhooks); several, comma-separated."""
    event_webhook_secret: str | None = None
    """`whsec_` and base64: signs every event (webhook-signature)."""
    event_retention_days: float = 7.0
    """Events are kept this long; a receiver down longer loses the oldest (counted and logged)."""
    org_timezone: str = "UTC"
    """The clinic's zone: dates in reports, the list's day filter and the front desk."""
    reconcile_interval: float = 300.0
    """Seconds between the worker's passes comparing the PostgreSQL mirror with Temporal, each over the
    reminders that can have changed since the pass before (0 turns them off)."""
    reconcile_full_interval: float = 86400.0
    """Seconds between passes over every reminder, sleeping ones included (the first pass on a new
    database is one). The schedule is kept in PostgreSQL: one pass each interval across all the workers."""
    worker_workflow_pollers: int = 25
    worker_workflow_task_slots: int = 100
    """Workflow tasks the worker runs at once, each on a thread of its own: every one of them contends for
    Python's lock with the event loop that sends the texts."""
    worker_cache_size: int = 1000
    """Reminders the worker keeps in memory (about 60 KB each, 115 KB sandboxed; the worker's memory
    follows this, not the pending reminders); one not cached is replayed from its history when it next
    has work. Size it for the reminders active within a few minutes."""
    worker_activity_slots: int = 10000
    worker_sandbox: bool = False
    """Run workflows in Temporal's sandbox: a runtime guard against nondeterministic workflow code, at a
    fresh module per reminder set up (CPU) and cached (memory). The workflow tests and the replay tests
    run every workflow in the sandbox, so CI keeps that guard either way."""
    worker_db_pool_size: int = 10
    """PostgreSQL connections of each worker process at most (one backend each on the server)."""
    api_db_pool_size: int = 10
    """PostgreSQL connections of each API process at most."""
    worker_ready_file: Path | None = None
    """Written with the worker's pid once it polls (the launcher waits for it)."""
    log_format: str = "text"
    log_level: str = "INFO"
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"

    @field_validator(
        "msg_reminder",
        "msg_confirmation",
        "msg_cancellation",
        "msg_unparsable",
        "msg_opt_out",
        "msg_opt_in",
        "msg_help",
        "msg_staff_reply",
        "msg_opt_out_line",
    )
    @classmethod
    def _unescape_newlines(cls, value: str) -> str:
        # A template set in a .env file or a shell variable writes its line break as "\n".
        return value.replace("\\n", "\n")

    @property
    def provider(self) -> str:
        if self.sms_provider:
            return self.sms_provider.lower()
        return "flowroute" if self.flowroute_access_key else "console"

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours_readable(cls, value: str | None) -> str | None:
        QuietHours.parse(value)  # a bad value stops the start, naming the setting
        return value

    @property
    def help_template(self) -> str:
        if self.msg_help == DEFAULT_HELP and not self.org_contact:
            return DEFAULT_HELP_NO_CONTACT
        return self.msg_help

    @property
    def quiet(self) -> QuietHours | None:
        return QuietHours.parse(self.quiet_hours)

    @field_validator("send_doubt_settle")
    @classmethod
    def _settle_after_timeout(cls, value: float, info: object) -> float:
        timeout = getattr(info, "data", {}).get("provider_timeout", 10.0)
        if value <= timeout:
            raise ValueError(f"SEND_DOUBT_SETTLE ({value}) must be longer than PROVIDER_TIMEOUT ({timeout})")
        return value

    @property
    def send_rate(self) -> float:
        if self.send_rate_per_second is not None:
            return self.send_rate_per_second
        return {"flowroute": 5.0, "twilio": 1.0}.get(self.provider, 0.0)

    @field_validator("event_webhook_secret")
    @classmethod
    def _secret_readable(cls, value: str | None) -> str | None:
        if value:
            secret_bytes(value)  # a bad value stops the start, naming the setting
        return value or None

    @field_validator("org_timezone")
    @classmethod
    def _zone_known(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"ORG_TIMEZONE {value!r} is not an IANA time zone") from err
        return value

    @property
    def event_receivers(self) -> list[str]:
        return [u.strip() for u in (self.event_webhook_url or "").split(",") if u.strip()]

    @property
    def api_key_list(self) -> list[str]:
        return [k.strip() for k in (self.api_keys or "").split(",") if k.strip()]

    @property
    def sending_numbers(self) -> list[str]:
        raw = self.twilio_number if self.provider == "twilio" else self.flowroute_number
        return [n.strip().lstrip("+") for n in raw.split(",") if n.strip()]


@lru_cache
def get_settings() -> Settings:
    return Settings()
