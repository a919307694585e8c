"""Optional encryption of everything the Temporal server stores about a reminder (PAYLOAD_ENCRYPTION_KEY).

With it on, workflow inputs, results, signals and activity arguments leave the process as AES-GCM
ciphertext, failure messages are encoded too, and the ContactNumber search attribute holds a keyed hash
of the number instead of the number.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import hashlib
import hmac
import os
from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import TypeAdapter
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
    PayloadCodec,
)

# Pydantic's adapter for each payload type, built once per process. The SDK makes a new payload converter
# for every workflow it sets up, and the stock converter's cache lives in the instance: each new reminder
# then paid for building the adapter of its input again (9% of the worker's samples in a create burst).
_type_adapter = functools.lru_cache(maxsize=256)(TypeAdapter)


class _JSONConverter(PydanticJSONPlainPayloadConverter):
    def __init__(self) -> None:
        super().__init__()
        self._type_adapter = _type_adapter


# The converters, built once: the SDK makes a payload converter twice for every workflow activation (its
# data converter with the workflow's context), and building the JSON one each time (a schema serializer and
# a cache wrapper) was 4 % of the worker's samples while it answered replies. None of them holds state.
_JSON = _JSONConverter()
_CONVERTERS = tuple(
    _JSON if isinstance(c, JSONPlainPayloadConverter) else c
    for c in DefaultPayloadConverter.default_encoding_payload_converters
)


class PayloadConverter(CompositePayloadConverter):
    """The SDK's pydantic JSON payloads (the same bytes on the wire), with one adapter cache per process."""

    def __init__(self) -> None:
        super().__init__(*_CONVERTERS)


plain_data_converter = DataConverter(payload_converter_class=PayloadConverter)

ENCODING = b"binary/encrypted"
NONCE_BYTES = 12


def parse_key(text: str) -> bytes:
    """A 128-, 192- or 256-bit key, written as base64 or hex."""
    raw = text.strip()
    for decode in (bytes.fromhex, base64.b64decode, base64.urlsafe_b64decode):
        try:
            key = decode(raw)
        except (ValueError, binascii.Error):
            continue
        if len(key) in (16, 24, 32):
            return key
    raise ValueError("PAYLOAD_ENCRYPTION_KEY must be 16, 24 or 32 bytes, as hex or base64")


class AesGcmCodec(PayloadCodec):
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(key).hexdigest()[:16].encode()

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for payload in payloads:
            nonce = os.urandom(NONCE_BYTES)
            sealed = self._aead.encrypt(nonce, payload.SerializeToString(), self.key_id)
            out.append(
                Payload(
                    metadata={"encoding": ENCODING, "encryption-key-id": self.key_id}, data=nonce + sealed
                )
            )
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                out.append(payload)
                continue
            key_id = payload.metadata.get("encryption-key-id", b"")
            if key_id != self.key_id:
                raise ValueError(
                    f"payload was encrypted with another key ({key_id.decode(errors='replace')})"
                )
            nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
            out.append(Payload.FromString(self._aead.decrypt(nonce, sealed, key_id)))
        return out


def data_converter(encryption_key: str | None) -> DataConverter:
    if not encryption_key:
        return plain_data_converter
    return dataclasses.replace(
        plain_data_converter,
        payload_codec=AesGcmCodec(parse_key(encryption_key)),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def contact_search_value(encryption_key: str | None, contact_number: str) -> str:
    """What the ContactNumber search attribute holds: the number, or with encryption on a keyed hash of it,
    so an operator who knows the number (and the key) can still find its reminders."""
    if not encryption_key:
        return contact_number
    digest = hmac.new(parse_key(encryption_key), f"contact:{contact_number}".encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


def main() -> None:
    """`python -m stack.codec 12223334444`: the ContactNumber value to search for."""
    import sys

    from settings import get_settings

    for number in sys.argv[1:]:
        print(contact_search_value(get_settings().payload_encryption_key, number.lstrip("+")))


if __name__ == "__main__":
    main()
