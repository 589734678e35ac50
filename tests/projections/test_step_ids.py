"""Deterministic step and message ids."""

from __future__ import annotations

import uuid

from messagedb_agent.events.ids import llm_step_id, message_id, tool_step_id

STREAM = "thread-2b0c7a55-8f0e-4d8a-a1f7-0c7f1d2e3a4b"


def test_an_llm_step_id_depends_only_on_the_stream_and_the_head() -> None:
    assert llm_step_id(STREAM, 4) == llm_step_id(STREAM, 4)
    assert llm_step_id(STREAM, 4) != llm_step_id(STREAM, 5)
    assert llm_step_id(STREAM, 4) != llm_step_id("thread-other", 4)


def test_ids_are_uuids_so_they_fit_message_db_ids() -> None:
    step = llm_step_id(STREAM, 0)
    for value in (step, tool_step_id(step), message_id(step, "response")):
        assert str(uuid.UUID(value)) == value


def test_tool_steps_and_messages_are_derived_without_colliding() -> None:
    step = llm_step_id(STREAM, 3)
    ids = {
        step,
        tool_step_id(step),
        tool_step_id(llm_step_id(STREAM, 4)),
        message_id(step, "response"),
        message_id(step, "failure-1"),
        message_id(step, "failure-2"),
        message_id(tool_step_id(step), "response"),
    }
    assert len(ids) == 7
    assert tool_step_id(step) == tool_step_id(llm_step_id(STREAM, 3))
