"""Running reminders must survive a new release: every committed history replays on today's code."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from stack.codec import plain_data_converter
from workflows.keyword import KeywordWorkflow
from workflows.reminder import ReminderWorkflow

HISTORIES = sorted((Path(__file__).parent.parent / "histories").glob("*.json"))


PATHS = {"sent", "deleted", "no_response", "opted_out", "confirmed_then_declined", "rescheduled"}


def test_histories_exist():
    """Every path, as today's code records it (before the first release a change records them again)."""
    assert PATHS <= {p.stem for p in HISTORIES}


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_replays_without_nondeterminism(path: Path):
    history = WorkflowHistory.from_json(f"reminder-{path.stem}", path.read_text())
    replayer = Replayer(workflows=[ReminderWorkflow, KeywordWorkflow], data_converter=plain_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
