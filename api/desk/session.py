"""The front desk's session cookie and its CSRF tokens: pure functions, no I/O.

A cookie is `v1.<nonce>.<issued>.<kind>.<mac>`: `kind` is `key` once signed in with one of API_KEYS, or
`anon` before (and always, when API_KEYS is unset). The MAC is an HMAC-SHA256, under the server's secret,
of the nonce, the time it was issued, the kind and a digest of the key; the key itself is never in the
cookie, and taking a key out of API_KEYS ends the sessions signed in with it. Each form carries a token
made from the session's nonce, checked on every POST."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

VERSION = "v1"
MAX_AGE = 12 * 3600
"""A session lasts a working day (seconds)."""


@dataclass(frozen=True)
class Session:
    nonce: str
    issued: int
    signed_in: bool


def desk_secret(configured: str | None, keys: list[str]) -> bytes:
    """DESK_SECRET when set; else one derived from the API keys, so sessions survive a restart and none
    can be made without knowing a key."""
    if configured:
        return hashlib.sha256(b"desk-secret|" + configured.encode()).digest()
    return hashlib.sha256(b"desk-derived|" + "\n".join(sorted(keys)).encode()).digest()


def _key_digest(key: str | None) -> str:
    return hashlib.sha256(key.encode()).hexdigest() if key is not None else ""


def _mac(secret: bytes, nonce: str, issued: int, kind: str, key: str | None) -> str:
    message = f"session|{nonce}|{issued}|{kind}|{_key_digest(key)}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def new_cookie(secret: bytes, now: int, key: str | None = None) -> str:
    """A fresh session (a new nonce each time: signing in never keeps the nonce it had before)."""
    nonce = secrets.token_urlsafe(18)
    kind = "key" if key is not None else "anon"
    return ".".join([VERSION, nonce, str(now), kind, _mac(secret, nonce, now, kind, key)])


def read_cookie(cookie: str | None, secret: bytes, keys: list[str], now: int) -> Session | None:
    """The session a cookie holds, or None when it is missing, altered, expired or its key was removed."""
    if not cookie or len(cookie) > 300:
        return None
    parts = cookie.split(".")
    if len(parts) != 5 or parts[0] != VERSION or not parts[2].isdigit():
        return None
    _, nonce, issued_text, kind, mac = parts
    issued = int(issued_text)
    if not 0 <= now - issued <= MAX_AGE:
        return None
    if kind == "anon":
        candidates: list[str | None] = [None]
    elif kind == "key":
        candidates = list(keys)
    else:
        return None
    matched = False
    for key in candidates:  # every key compared, whichever matches
        matched |= hmac.compare_digest(mac, _mac(secret, nonce, issued, kind, key))
    if not matched:
        return None
    return Session(nonce=nonce, issued=issued, signed_in=kind == "key")


def key_matches(given: str, keys: list[str]) -> str | None:
    """The configured key equal to `given`, compared in constant time against every key."""
    found = None
    for key in keys:
        if hmac.compare_digest(given.encode(), key.encode()):
            found = key
    return found


def csrf_token(secret: bytes, session: Session) -> str:
    return hmac.new(secret, f"csrf|{session.nonce}".encode(), hashlib.sha256).hexdigest()


def csrf_ok(secret: bytes, session: Session, given: object) -> bool:
    return isinstance(given, str) and hmac.compare_digest(
        given.encode(), csrf_token(secret, session).encode()
    )
