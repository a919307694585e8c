"""The fake provider's server: a sender gone before its answer is written is no error, anything else is."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.fakes import FakeProvider


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    provider = FakeProvider()
    provider.start()
    yield provider
    provider.stop()


@pytest.mark.parametrize("gone", [BrokenPipeError(32, "Broken pipe"), ConnectionResetError(104, "reset")])
def test_a_sender_gone_mid_answer_is_taken_quietly(
    fake: FakeProvider, gone: OSError, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        raise gone
    except OSError:
        fake.server.handle_error(None, ("127.0.0.1", 1))
    assert capsys.readouterr().err == ""


def test_any_other_failure_is_still_reported(fake: FakeProvider, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        raise ValueError("a bug in the fake")
    except ValueError:
        fake.server.handle_error(None, ("127.0.0.1", 1))
    assert "a bug in the fake" in capsys.readouterr().err
