"""The Standard Webhooks signature: HMAC-SHA256 over `{id}.{timestamp}.{body}` with the secret's bytes
(`whsec_` and base64), sent as `v1,<base64>` in `webhook-signature`."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 16


def secret_bytes(secret: str) -> bytes:
    """The key a `whsec_...` secret stands for; ValueError when it is not one."""
    text = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(text + "==", validate=False)
    except (binascii.Error, ValueError) as err:
        raise ValueError("must be whsec_ followed by base64") from err
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"must hold at least {MIN_SECRET_BYTES} bytes (whsec_ followed by base64)")
    return key


def signature(key: bytes, msg_id: str, timestamp: int, body: str) -> str:
    digest = hmac.new(key, f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return f"v1,{base64.b64encode(digest).decode()}"


def headers(key: bytes | None, msg_id: str, timestamp: int, body: str) -> dict[str, str]:
    """The headers of one delivery attempt (signed at the attempt's own time)."""
    out = {"content-type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
    if key is not None:
        out["webhook-signature"] = signature(key, msg_id, timestamp, body)
    return out
