"""Claude's streamed replies through the real `AnthropicVertex` client: `streamRawPredict`
with `"stream": true` against the local endpoint, which sends each scripted reply as the
documented event sequence (`vertex_streams`).

A streamed call must read back exactly what the whole call reads, hand the text to `on_text`
as it arrives, and treat a stream that breaks off as a failed attempt, never as an answer.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.llm.conftest import TOKEN
from tests.llm.fake_vertex import (
    VERTEX_ANTHROPIC_VERSION,
    FakeVertex,
    anthropic_error,
    claude_reply,
)

from messagedb_agent.events.values import ToolCall
from messagedb_agent.llm import errors
from messagedb_agent.llm.claude import ClaudeModel
from messagedb_agent.llm.types import LLMConfig, LLMError, LLMResponse, ToolSpec, UserTurn

MODEL = "claude-sonnet-4-5@20250929"
LONG_TEXT = "Sure, I have added the task to buy milk to your list. Anything else I can do?"
ADD_TASK = ToolSpec(
    "add_task",
    "Add a task.",
    {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]},
)


def _streamed(
    claude: ClaudeModel, tools: list[ToolSpec] | None = None
) -> tuple[LLMResponse, list[str]]:
    pieces: list[str] = []
    config = LLMConfig(model=MODEL, timeout_seconds=5, on_text=pieces.append)
    return claude.call([UserTurn("Add a task to buy milk")], tools or [], config), pieces


def _whole(claude: ClaudeModel, tools: list[ToolSpec] | None = None) -> LLMResponse:
    config = LLMConfig(model=MODEL, timeout_seconds=5)
    return claude.call([UserTurn("Add a task to buy milk")], tools or [], config)


def test_a_streamed_text_reply_reaches_on_text_in_pieces_and_reads_back_whole(
    claude: ClaudeModel, vertex: FakeVertex
) -> None:
    vertex.reply(claude_reply({"type": "text", "text": LONG_TEXT}))

    response, pieces = _streamed(claude)

    assert len(pieces) > 3
    assert "".join(pieces) == response.text == LONG_TEXT
    assert response.finish_reason == "stop"
    sent = vertex.last
    assert sent.params["method"] == "streamRawPredict"
    assert sent.body["stream"] is True
    assert sent.body["anthropic_version"] == VERTEX_ANTHROPIC_VERSION
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"


def test_a_streamed_reply_reads_back_as_the_whole_call_reads_the_same_reply(
    claude: ClaudeModel, vertex: FakeVertex
) -> None:
    """Text, a tool call whose input came as partial JSON, and every usage count survive."""
    body = claude_reply(
        {"type": "text", "text": "Adding it now."},
        {
            "type": "tool_use",
            "id": "toolu_01",
            "name": "add_task",
            "input": {"title": "buy milk", "notes": "two litres, semi-skimmed"},
        },
        stop_reason="tool_use",
        input_tokens=30,
        output_tokens=25,
        cache_creation_input_tokens=100,
        cache_read_input_tokens=400,
        thinking_tokens=6,
    )
    vertex.reply(body)
    vertex.reply(body)

    streamed, pieces = _streamed(claude, [ADD_TASK])
    whole = _whole(claude, [ADD_TASK])

    assert streamed == whole
    assert streamed.tool_calls == (
        ToolCall(
            id="toolu_01",
            name="add_task",
            arguments={"title": "buy milk", "notes": "two litres, semi-skimmed"},
        ),
    )
    assert streamed.token_usage.input_tokens == 530
    assert streamed.token_usage.cached_input_tokens == 400
    assert streamed.token_usage.thinking_tokens == 6
    assert "".join(pieces) == "Adding it now."


@pytest.mark.parametrize(
    ("failure", "kind", "status", "retryable"),
    [
        (None, errors.SERVER, 529, True),  # overloaded_error, the streaming page's example
        (anthropic_error("api_error", "Internal server error"), errors.SERVER, 500, True),
        (anthropic_error("rate_limit_error", "Slow down"), errors.RATE_LIMITED, 429, True),
        (anthropic_error("billing_error", "Payment required"), errors.QUOTA, 402, False),
    ],
    ids=["overloaded", "api-error", "rate-limit", "billing"],
)
def test_an_error_event_in_mid_stream_is_classified_by_its_type(
    claude: ClaudeModel,
    vertex: FakeVertex,
    failure: dict[str, Any] | None,
    kind: str,
    status: int,
    retryable: bool,
) -> None:
    vertex.reply(claude_reply({"type": "text", "text": LONG_TEXT}), fail_after=4, failure=failure)
    pieces: list[str] = []
    config = LLMConfig(model=MODEL, timeout_seconds=5, on_text=pieces.append)

    with pytest.raises(LLMError) as raised:
        claude.call([UserTurn("hi")], [], config)

    assert (raised.value.kind, raised.value.status, raised.value.retryable) == (
        kind,
        status,
        retryable,
    )
    assert pieces  # the text before the error was shown; the failed attempt withdraws it


def test_a_billing_error_is_an_operator_fault_that_pauses_the_thread(
    claude: ClaudeModel, vertex: FakeVertex
) -> None:
    vertex.reply(
        claude_reply({"type": "text", "text": LONG_TEXT}),
        fail_after=1,
        failure=anthropic_error("billing_error", "Payment required"),
    )

    with pytest.raises(LLMError) as raised:
        _streamed(claude)

    assert errors.is_operator_fault(raised.value)


def test_a_dropped_stream_is_never_taken_for_a_whole_answer(
    claude: ClaudeModel, vertex: FakeVertex
) -> None:
    vertex.reply(claude_reply({"type": "text", "text": LONG_TEXT}), cut_after=5)

    with pytest.raises(LLMError) as raised:
        _streamed(claude)

    assert raised.value.kind == errors.UNAVAILABLE
    assert raised.value.retryable


def test_an_error_status_before_the_stream_starts_is_classified_as_for_a_whole_call(
    claude: ClaudeModel, vertex: FakeVertex
) -> None:
    vertex.anthropic_error(529, "overloaded_error", "Overloaded")

    with pytest.raises(LLMError) as raised:
        _streamed(claude)

    assert (raised.value.kind, raised.value.status) == (errors.SERVER, 529)
    assert len(vertex.requests) == 1


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (claude_reply({"type": "text", "text": "I won't"}, stop_reason="refusal"), errors.SAFETY),
        (
            claude_reply({"type": "text", "text": "A long answer cut"}, stop_reason="max_tokens"),
            errors.TRUNCATED,
        ),
        (claude_reply(stop_reason="end_turn"), errors.EMPTY),
    ],
    ids=["refusal", "max-tokens", "empty"],
)
def test_a_streamed_reply_that_is_no_answer_fails_as_the_whole_call_does(
    claude: ClaudeModel, vertex: FakeVertex, body: dict[str, Any], kind: str
) -> None:
    vertex.reply(body)
    vertex.reply(body)

    with pytest.raises(LLMError) as streamed:
        _streamed(claude)
    with pytest.raises(LLMError) as whole:
        _whole(claude)

    assert streamed.value.kind == whole.value.kind == kind


def test_the_stream_route_holds_requests_to_the_same_rules(
    claude: ClaudeModel, vertex: FakeVertex
) -> None:
    vertex.reply(claude_reply({"type": "text", "text": "never sent"}))
    config = LLMConfig(model=MODEL, max_output_tokens=10_000_000, on_text=lambda _: None)

    with pytest.raises(LLMError) as raised:
        claude.call([UserTurn("hi")], [], config)

    assert raised.value.kind == errors.BAD_REQUEST
    assert vertex.pending == 1
