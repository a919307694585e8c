"""A send waits out a PostgreSQL outage inside its attempt, and lets every other error through."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

import db.store as store


class Flaky:
    """Fails with the given errors in turn, then answers."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "claimed"


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "DB_WAIT_FIRST", 0.001)
    monkeypatch.setattr(store, "DB_WAIT_LONGEST", 0.002)


def test_a_refused_or_dropped_connection_is_tried_again_until_postgresql_answers():
    call = Flaky(
        ConnectionRefusedError(111, "refused"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        FileNotFoundError(2, "no socket"),
        TimeoutError(),
    )
    assert asyncio.run(store.waiting_for_postgres("claim", call)) == "claimed"
    assert call.calls == 5


def test_an_error_that_is_not_the_database_being_away_is_raised_at_once():
    call = Flaky(asyncpg.UniqueViolationError("duplicate key"))
    with pytest.raises(asyncpg.UniqueViolationError):
        asyncio.run(store.waiting_for_postgres("claim", call))
    assert call.calls == 1
