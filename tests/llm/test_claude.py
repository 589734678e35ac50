"""Claude through the real `anthropic.AnthropicVertex` client against a local Vertex endpoint.

Each test asserts on the Messages-API JSON the SDK actually sent and on how the reply was read.
"""

from __future__ import annotations

import json
import socket

import pytest
from google.oauth2.credentials import Credentials
from tests.llm.conftest import LOCATION, PROJECT, TOKEN
from tests.llm.fake_vertex import FakeVertex, claude_reply

from messagedb_agent.events.values import TokenUsage, ToolCall
from messagedb_agent.llm.claude import DEFAULT_MAX_TOKENS, ClaudeModel
from messagedb_agent.llm.types import (
    AssistantTurn,
    LLMConfig,
    LLMError,
    Message,
    ToolResult,
    ToolSpec,
    UserTurn,
)

MODEL = "claude-sonnet-4-5@20250929"
CONFIG = LLMConfig(model=MODEL, system_prompt="You manage tasks.", timeout_seconds=5)
ADD_TASK = ToolSpec(
    "add_task",
    "Add a task to the user's list.",
    {
        "type": "object",
        "properties": {"title": {"type": "string"}, "description": {"type": "string"}},
        "required": ["title"],
    },
)
LIST_TASKS = ToolSpec(
    "list_tasks",
    "List the user's tasks.",
    {"type": "object", "properties": {"status": {"enum": ["all", "pending", "completed"]}}},
)


def test_text_reply_sends_a_top_level_system_prompt(
    claude: ClaudeModel, vertex: FakeVertex
) -> None:
    vertex.reply(claude_reply({"type": "text", "text": "Hello "}, {"type": "text", "text": "you."}))
    config = LLMConfig(model=MODEL, system_prompt="Be brief.", temperature=0.3)

    response = claude.call([UserTurn("Hi!")], [], config)

    assert response.text == "Hello you."
    assert response.tool_calls == ()
    assert response.finish_reason == "stop"
    assert response.model_name == "claude-sonnet-4-5"
    sent = vertex.last
    assert sent.api == "claude"
    assert sent.params == {"project": PROJECT, "location": LOCATION, "model": MODEL}
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.body["system"] == "Be brief."
    assert sent.body["temperature"] == 0.3
    assert sent.body["max_tokens"] == DEFAULT_MAX_TOKENS
    assert sent.body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi!"}]}]
    assert "anthropic_version" in sent.body
    assert "model" not in sent.body
    assert "tools" not in sent.body


def test_max_output_tokens_and_an_access_token_are_used(vertex: FakeVertex) -> None:
    model = ClaudeModel(
        project=PROJECT, location=LOCATION, base_url=vertex.url, access_token="static-token"
    )
    vertex.reply(claude_reply({"type": "text", "text": "ok"}))

    model.call([UserTurn("Hi")], [], LLMConfig(model=MODEL, max_output_tokens=123))

    assert vertex.last.body["max_tokens"] == 123
    assert vertex.last.headers["Authorization"] == "Bearer static-token"
    assert "system" not in vertex.last.body


def test_usage_counts_cached_prompt_tokens_as_input(
    claude: ClaudeModel, vertex: FakeVertex
) -> None:
    body = claude_reply({"type": "text", "text": "ok"}, input_tokens=100, output_tokens=20)
    body["usage"] |= {"cache_creation_input_tokens": 7, "cache_read_input_tokens": 3}
    vertex.reply(body)

    response = claude.call([UserTurn("Hi")], [], CONFIG)

    assert response.token_usage == TokenUsage(input_tokens=110, output_tokens=20)


def test_tools_are_sent_with_their_input_schema(claude: ClaudeModel, vertex: FakeVertex) -> None:
    vertex.reply(claude_reply({"type": "text", "text": "ok"}))

    claude.call([UserTurn("Hi")], [ADD_TASK, LIST_TASKS], CONFIG)

    assert vertex.last.body["tools"] == [
        {
            "name": "add_task",
            "description": "Add a task to the user's list.",
            "input_schema": ADD_TASK.parameters,
        },
        {
            "name": "list_tasks",
            "description": "List the user's tasks.",
            "input_schema": LIST_TASKS.parameters,
        },
    ]


def test_parallel_tool_use_blocks_become_tool_calls(
    claude: ClaudeModel, vertex: FakeVertex
) -> None:
    vertex.reply(
        claude_reply(
            {"type": "text", "text": "Adding both."},
            {"type": "tool_use", "id": "toolu_1", "name": "add_task", "input": {"title": "milk"}},
            {"type": "tool_use", "id": "toolu_2", "name": "add_task", "input": {"title": "dog"}},
            stop_reason="tool_use",
        )
    )

    response = claude.call([UserTurn("add milk and dog")], [ADD_TASK], CONFIG)

    assert response.text == "Adding both."
    assert response.finish_reason == "tool_calls"
    assert response.tool_calls == (
        ToolCall(id="toolu_1", name="add_task", arguments={"title": "milk"}),
        ToolCall(id="toolu_2", name="add_task", arguments={"title": "dog"}),
    )


def test_tool_round_trip_groups_results_into_one_user_message(
    claude: ClaudeModel, vertex: FakeVertex
) -> None:
    vertex.reply(claude_reply({"type": "text", "text": "Done."}))
    calls = (
        ToolCall(id="toolu_1", name="add_task", arguments={"title": "milk"}),
        ToolCall(id="toolu_2", name="list_tasks", arguments={}),
    )
    messages: list[Message] = [
        UserTurn("add milk and show my tasks"),
        AssistantTurn("", calls),
        ToolResult("toolu_1", "add_task", {"task": {"id": 1, "title": "milk"}}),
        ToolResult("toolu_2", "list_tasks", {"error": "store down", "kind": "unavailable"}, True),
        UserTurn("also, thanks!"),
    ]

    response = claude.call(messages, [ADD_TASK, LIST_TASKS], CONFIG)

    assert response.text == "Done."
    assert vertex.last.body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "add milk and show my tasks"}]},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "add_task",
                    "input": {"title": "milk"},
                },
                {"type": "tool_use", "id": "toolu_2", "name": "list_tasks", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": json.dumps({"task": {"id": 1, "title": "milk"}}),
                    "is_error": False,
                },
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": json.dumps({"error": "store down", "kind": "unavailable"}),
                    "is_error": True,
                },
                {"type": "text", "text": "also, thanks!"},
            ],
        },
    ]


def test_assistant_text_is_sent_before_its_tool_use(
    claude: ClaudeModel, vertex: FakeVertex
) -> None:
    vertex.reply(claude_reply({"type": "text", "text": "ok"}))
    call = ToolCall(id="toolu_9", name="list_tasks", arguments={"status": "pending"})

    claude.call(
        [
            UserTurn("what is left?"),
            AssistantTurn("Let me look.", (call,)),
            ToolResult("toolu_9", "list_tasks", "nothing"),
        ],
        [LIST_TASKS],
        CONFIG,
    )

    assistant, results = vertex.last.body["messages"][1:]
    assert assistant["content"] == [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "toolu_9", "name": "list_tasks", "input": {"status": "pending"}},
    ]
    assert results["content"][0]["content"] == "nothing"


def test_max_tokens_is_reported_as_the_finish_reason(
    claude: ClaudeModel, vertex: FakeVertex
) -> None:
    vertex.reply(claude_reply({"type": "text", "text": "Once upon"}, stop_reason="max_tokens"))

    response = claude.call([UserTurn("story")], [], CONFIG)

    assert response.finish_reason == "max_tokens"


def test_a_refusal_is_a_safety_error(claude: ClaudeModel, vertex: FakeVertex) -> None:
    vertex.reply(claude_reply(stop_reason="refusal"))

    with pytest.raises(LLMError) as raised:
        claude.call([UserTurn("something harmful")], [], CONFIG)

    assert (raised.value.kind, raised.value.retryable) == ("safety", False)


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (429, "rate_limited", True),
        (500, "server", True),
        (529, "server", True),
        (400, "bad_request", False),
        (401, "auth", False),
        (403, "auth", False),
    ],
)
def test_http_errors_are_classified_without_sdk_retries(
    claude: ClaudeModel, vertex: FakeVertex, status: int, kind: str, retryable: bool
) -> None:
    vertex.error(status, f"upstream says {status}")
    vertex.reply(claude_reply({"type": "text", "text": "a retry would have succeeded"}))

    with pytest.raises(LLMError) as raised:
        claude.call([UserTurn("hi")], [], CONFIG)

    assert (raised.value.kind, raised.value.retryable, raised.value.status) == (
        kind,
        retryable,
        status,
    )
    assert f"upstream says {status}" in str(raised.value)
    assert len(vertex.requests) == 1


def test_a_slow_endpoint_times_out_once(claude: ClaudeModel, vertex: FakeVertex) -> None:
    vertex.reply(claude_reply({"type": "text", "text": "too late"}), delay=2.0)

    with pytest.raises(LLMError) as raised:
        claude.call([UserTurn("hi")], [], LLMConfig(model=MODEL, timeout_seconds=0.3))

    assert (raised.value.kind, raised.value.retryable) == ("timeout", True)
    assert len(vertex.requests) == 1


def test_an_unreachable_endpoint_is_unavailable(credentials: Credentials) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    model = ClaudeModel(
        project=PROJECT,
        location=LOCATION,
        base_url=f"http://127.0.0.1:{port}",
        credentials=credentials,
    )

    with pytest.raises(LLMError) as raised:
        model.call([UserTurn("hi")], [], CONFIG)

    assert (raised.value.kind, raised.value.retryable) == ("unavailable", True)


def test_credentials_that_cannot_refresh_are_an_auth_error(vertex: FakeVertex) -> None:
    model = ClaudeModel(
        project=PROJECT, location=LOCATION, base_url=vertex.url, credentials=Credentials(token=None)
    )

    with pytest.raises(LLMError) as raised:
        model.call([UserTurn("hi")], [], CONFIG)

    assert (raised.value.kind, raised.value.retryable) == ("auth", False)
    assert vertex.requests == []
