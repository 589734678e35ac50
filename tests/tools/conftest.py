"""Tool contexts for the tool tests: a fixed clock and a fresh user per test."""

from __future__ import annotations

import uuid

import pytest
from tests.tools.contexts import FIXED_NOW, MakeContext

from messagedb_agent.store.client import MessageStore
from messagedb_agent.tools import ToolContext


@pytest.fixture
def owner() -> str:
    """A user no other test acts for."""
    return f"user{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_ctx(store: MessageStore, owner: str, stream: str) -> MakeContext:
    """Contexts for one thread; each call is a new tool call unless ids are given."""

    def make(
        *,
        owner: str = owner,
        step_id: str | None = None,
        tool_call_id: str | None = None,
        store: MessageStore | None = store,
    ) -> ToolContext:
        return ToolContext(
            owner=owner,
            stream_name=stream,
            step_id=step_id or str(uuid.uuid4()),
            tool_call_id=tool_call_id or f"call_{uuid.uuid4().hex[:8]}",
            store=store,
            now=FIXED_NOW,
        )

    return make


@pytest.fixture
def offline_ctx() -> ToolContext:
    """A context without a store, for tools that never touch the database."""
    return ToolContext(
        owner="ada",
        stream_name=f"thread-{uuid.uuid4()}",
        step_id="step-1",
        tool_call_id="call-1",
        store=None,
        now=FIXED_NOW,
    )
