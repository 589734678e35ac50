"""Gemini's streamed replies through the real SDK: `streamGenerateContent?alt=sse` against the
local endpoint, which cuts each scripted reply the way the service does (`vertex_streams`).

A streamed call must read back exactly what the whole call reads, hand the text to `on_text`
as it arrives, and treat a stream that breaks off as a failed attempt, never as an answer.
"""

from __future__ import annotations

from base64 import b64encode
from dataclasses import replace

import httpx
import pytest
from tests.llm.conftest import LOCATION, PROJECT, TOKEN
from tests.llm.fake_vertex import (
    FakeVertex,
    gemini_blocked_prompt,
    gemini_reply,
)
from tests.llm.vertex_streams import gemini_chunks

from messagedb_agent.events.values import TokenUsage
from messagedb_agent.llm import errors
from messagedb_agent.llm.gemini import GeminiModel
from messagedb_agent.llm.types import LLMConfig, LLMError, LLMResponse, ToolSpec, UserTurn

MODEL = "gemini-2.5-flash"
SIGNING_MODEL = "gemini-3.5-flash"
LONG_TEXT = "Sure, I have added the task to buy milk to your list. Anything else I can do?"
ADD_TASK = ToolSpec(
    "add_task",
    "Add a task.",
    {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]},
)


def _streamed(
    gemini: GeminiModel, model: str = MODEL, tools: list[ToolSpec] | None = None
) -> tuple[LLMResponse, list[str]]:
    pieces: list[str] = []
    config = LLMConfig(model=model, timeout_seconds=5, on_text=pieces.append)
    return gemini.call([UserTurn("Add a task to buy milk")], tools or [], config), pieces


def _whole(
    gemini: GeminiModel, model: str = MODEL, tools: list[ToolSpec] | None = None
) -> LLMResponse:
    config = LLMConfig(model=model, timeout_seconds=5)
    return gemini.call([UserTurn("Add a task to buy milk")], tools or [], config)


def test_a_streamed_text_reply_reaches_on_text_in_pieces_and_reads_back_whole(
    gemini: GeminiModel, vertex: FakeVertex
) -> None:
    body = gemini_reply({"text": LONG_TEXT}, prompt_tokens=21, output_tokens=17)
    vertex.reply(body)

    response, pieces = _streamed(gemini)

    assert len(pieces) == len(gemini_chunks(body)) > 3
    assert "".join(pieces) == response.text == LONG_TEXT
    assert response.finish_reason == "stop"
    assert response.token_usage == TokenUsage(input_tokens=21, output_tokens=17)
    sent = vertex.last
    assert sent.params["method"] == "streamGenerateContent"
    assert sent.query == {"alt": "sse"}
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.params["project"] == PROJECT
    assert sent.params["location"] == LOCATION


def test_a_streamed_reply_reads_back_as_the_whole_call_reads_the_same_reply(
    gemini: GeminiModel, vertex: FakeVertex
) -> None:
    """Text, a signed function call, usage with thinking and the model version all survive."""
    body = gemini_reply(
        {"text": "Adding it now."},
        {"functionCall": {"name": "add_task", "args": {"title": "buy milk"}}},
        prompt_tokens=40,
        output_tokens=9,
        thoughts_tokens=5,
        cached_tokens=8,
        model_version="gemini-3.5-flash-002",
    )
    vertex.reply(body)
    vertex.reply(body)

    streamed, pieces = _streamed(gemini, SIGNING_MODEL, [ADD_TASK])
    whole = _whole(gemini, SIGNING_MODEL, [ADD_TASK])

    # Each response gets its own signature from the service; all else reads back the same.
    assert replace(streamed, thought_signatures={}) == replace(whole, thought_signatures={})
    assert streamed.tool_calls[0].arguments == {"title": "buy milk"}
    assert streamed.thought_signatures == {"call_0_add_task": b64encode(b"signature-1").decode()}
    assert streamed.finish_reason == "tool_calls"
    assert "".join(pieces) == "Adding it now."


def test_a_stream_broken_off_by_an_error_is_a_retryable_failure_after_its_first_pieces(
    gemini: GeminiModel, vertex: FakeVertex
) -> None:
    vertex.reply(gemini_reply({"text": LONG_TEXT}), fail_after=2)

    pieces: list[str] = []
    config = LLMConfig(model=MODEL, timeout_seconds=5, on_text=pieces.append)

    with pytest.raises(LLMError) as raised:
        gemini.call([UserTurn("hi")], [], config)

    assert raised.value.retryable
    assert raised.value.status == 503
    assert raised.value.kind == errors.SERVER
    assert len(pieces) == 2  # what came before the error was shown, then withdrawn


def test_a_dropped_stream_is_never_taken_for_a_whole_answer(
    gemini: GeminiModel, vertex: FakeVertex
) -> None:
    vertex.reply(gemini_reply({"text": LONG_TEXT}), cut_after=3)

    with pytest.raises(LLMError) as raised:
        _streamed(gemini)

    assert raised.value.kind == errors.UNAVAILABLE
    assert raised.value.retryable
    assert "finish reason" in str(raised.value)


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (429, errors.RATE_LIMITED, True),
        (503, errors.SERVER, True),
        (400, errors.BAD_REQUEST, False),
        (403, errors.AUTH, False),
    ],
)
def test_an_error_status_before_the_stream_starts_is_classified_as_for_a_whole_call(
    gemini: GeminiModel, vertex: FakeVertex, status: int, kind: str, retryable: bool
) -> None:
    vertex.error(status, "refused")

    with pytest.raises(LLMError) as raised:
        _streamed(gemini)

    assert (raised.value.kind, raised.value.retryable, raised.value.status) == (
        kind,
        retryable,
        status,
    )
    assert len(vertex.requests) == 1  # the SDK's own retries stay off for streams too


def test_a_model_the_project_cannot_use_pauses_the_thread_on_the_stream_route_too(
    gemini: GeminiModel, vertex: FakeVertex
) -> None:
    with pytest.raises(LLMError) as raised:
        _streamed(gemini, "gemini-0-imaginary")

    assert raised.value.kind == errors.MODEL_NOT_FOUND
    assert errors.is_operator_fault(raised.value)
    assert vertex.last.params["method"] == "streamGenerateContent"


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (gemini_reply({"text": "Here is how to"}, finish_reason="SAFETY"), errors.SAFETY),
        (gemini_blocked_prompt("PROHIBITED_CONTENT"), errors.SAFETY),
        (gemini_reply({"text": "A long answer cut"}, finish_reason="MAX_TOKENS"), errors.TRUNCATED),
        (gemini_reply(finish_reason="STOP"), errors.EMPTY),
    ],
    ids=["safety-finish", "blocked-prompt", "max-tokens", "empty"],
)
def test_a_streamed_reply_that_is_no_answer_fails_as_the_whole_call_does(
    gemini: GeminiModel, vertex: FakeVertex, body: dict[str, object], kind: str
) -> None:
    vertex.reply(body)
    vertex.reply(body)

    with pytest.raises(LLMError) as streamed:
        _streamed(gemini)
    with pytest.raises(LLMError) as whole:
        _whole(gemini)

    assert streamed.value.kind == whole.value.kind == kind


def test_the_stream_route_holds_requests_to_the_same_rules(
    gemini: GeminiModel, vertex: FakeVertex
) -> None:
    vertex.reply(gemini_reply({"text": "never sent"}))
    config = LLMConfig(model=MODEL, max_output_tokens=10_000_000, on_text=lambda _: None)

    with pytest.raises(LLMError) as raised:
        gemini.call([UserTurn("hi")], [], config)

    assert raised.value.kind == errors.BAD_REQUEST
    assert "maxOutputTokens" in str(raised.value)
    assert vertex.pending == 1


def test_without_alt_sse_the_stand_in_streams_one_json_array(vertex: FakeVertex) -> None:
    """The REST reference's other form of the same stream, for clients that ask for it."""
    body = gemini_reply({"text": LONG_TEXT})
    vertex.reply(body)
    url = (
        f"{vertex.url}/v1beta1/projects/{PROJECT}/locations/{LOCATION}"
        f"/publishers/google/models/{MODEL}:streamGenerateContent"
    )

    answer = httpx.post(url, json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json() == gemini_chunks(body)
