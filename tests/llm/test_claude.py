"""Claude through the real `anthropic.AnthropicVertex` client against a local Vertex endpoint.

Each test asserts on the Messages-API JSON the SDK actually sent and on how the reply was read.
"""

from __future__ import annotations

import copy
import json
import socket
from typing import Any

import httpx
import pytest
from google.oauth2.credentials import Credentials
from tests.llm.conftest import LOCATION, PROJECT, TOKEN
from tests.llm.fake_vertex import (
    RESOURCE_EXHAUSTED_MESSAGE,
    VERTEX_ANTHROPIC_VERSION,
    FakeVertex,
    claude_reply,
)

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
    assert sent.params == {
        "project": PROJECT,
        "location": LOCATION,
        "model": MODEL,
        "method": "rawPredict",
    }
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.body["system"] == "Be brief."
    assert sent.body["temperature"] == 0.3
    assert sent.body["max_tokens"] == DEFAULT_MAX_TOKENS
    assert sent.body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi!"}]}]
    assert sent.body["anthropic_version"] == VERTEX_ANTHROPIC_VERSION
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


def test_usage_counts_cache_writes_and_reads_as_input_and_reads_as_cached(
    claude: ClaudeModel, vertex: FakeVertex
) -> None:
    vertex.reply(
        claude_reply(
            {"type": "text", "text": "ok"},
            input_tokens=100,
            output_tokens=20,
            cache_creation_input_tokens=7,
            cache_read_input_tokens=3,
        )
    )

    response = claude.call([UserTurn("Hi")], [], CONFIG)

    assert response.token_usage == TokenUsage(
        input_tokens=110, output_tokens=20, cached_input_tokens=3, thinking_tokens=0
    )


def test_usage_reports_thinking_tokens_when_the_service_does(
    claude: ClaudeModel, vertex: FakeVertex
) -> None:
    vertex.reply(claude_reply({"type": "text", "text": "ok"}, output_tokens=50, thinking_tokens=30))

    response = claude.call([UserTurn("Hi")], [], CONFIG)

    assert (response.token_usage.output_tokens, response.token_usage.thinking_tokens) == (50, 30)


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


def test_a_reply_cut_at_max_tokens_is_truncated_and_names_the_limit(
    claude: ClaudeModel, vertex: FakeVertex
) -> None:
    vertex.reply(claude_reply({"type": "text", "text": "Once upon"}, stop_reason="max_tokens"))

    with pytest.raises(LLMError) as raised:
        claude.call([UserTurn("story")], [], LLMConfig(model=MODEL, max_output_tokens=300))

    assert (raised.value.kind, raised.value.retryable) == ("truncated", True)
    assert "max_tokens=300" in str(raised.value)
    assert vertex.last.body["max_tokens"] == 300


def test_a_cut_text_reply_is_returned_once_the_caller_accepts_one(
    claude: ClaudeModel, vertex: FakeVertex
) -> None:
    vertex.reply(claude_reply({"type": "text", "text": "Once upon"}, stop_reason="max_tokens"))
    config = LLMConfig(model=MODEL, max_output_tokens=300, accept_truncated=True)

    response = claude.call([UserTurn("story")], [], config)

    assert (response.text, response.tool_calls, response.finish_reason) == (
        "Once upon",
        (),
        "max_tokens",
    )


def test_a_half_written_tool_use_is_never_returned_even_when_cut_replies_are_accepted(
    claude: ClaudeModel, vertex: FakeVertex
) -> None:
    vertex.reply(
        claude_reply(
            {"type": "text", "text": "Adding it."},
            {"type": "tool_use", "id": "toolu_cut", "name": "add_task", "input": {"title": "bu"}},
            stop_reason="max_tokens",
        )
    )
    config = LLMConfig(model=MODEL, max_output_tokens=40, accept_truncated=True)

    with pytest.raises(LLMError) as raised:
        claude.call([UserTurn("add buy milk")], [ADD_TASK], config)

    assert raised.value.kind == "truncated"
    assert "tool call" in str(raised.value)


def test_a_reply_stopped_by_the_context_window_is_truncated(
    claude: ClaudeModel, vertex: FakeVertex
) -> None:
    vertex.reply(
        claude_reply(
            {"type": "text", "text": "The list"}, stop_reason="model_context_window_exceeded"
        )
    )

    with pytest.raises(LLMError) as raised:
        claude.call([UserTurn("list everything")], [], CONFIG)

    assert raised.value.kind == "truncated"


def test_an_empty_end_turn_is_an_empty_reply(claude: ClaudeModel, vertex: FakeVertex) -> None:
    vertex.reply(claude_reply(stop_reason="end_turn", output_tokens=3))

    with pytest.raises(LLMError) as raised:
        claude.call([UserTurn("hi")], [], CONFIG)

    assert (raised.value.kind, raised.value.retryable) == ("empty", True)


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
        project=PROJECT,
        location=LOCATION,
        base_url=vertex.url,
        credentials=Credentials(token=None),  # type: ignore[no-untyped-call]
    )

    with pytest.raises(LLMError) as raised:
        model.call([UserTurn("hi")], [], CONFIG)

    assert (raised.value.kind, raised.value.retryable) == ("auth", False)
    assert vertex.requests == []


def test_a_tool_result_sent_after_a_user_text_still_leads_the_user_turn(
    claude: ClaudeModel, vertex: FakeVertex
) -> None:
    vertex.reply(claude_reply({"type": "text", "text": "ok"}))
    calls = (
        ToolCall(id="toolu_1", name="add_task", arguments={"title": "milk"}),
        ToolCall(id="toolu_2", name="list_tasks", arguments={}),
    )

    claude.call(
        [
            UserTurn("add milk, then list"),
            AssistantTurn("", calls),
            ToolResult("toolu_1", "add_task", "added"),
            UserTurn("hurry"),
            ToolResult("toolu_2", "list_tasks", "milk"),
        ],
        [ADD_TASK, LIST_TASKS],
        CONFIG,
    )

    last = vertex.last.body["messages"][-1]["content"]
    assert [block["type"] for block in last] == ["tool_result", "tool_result", "text"]
    assert [block.get("tool_use_id") for block in last[:2]] == ["toolu_1", "toolu_2"]


def test_a_two_turn_tool_conversation_passes_the_strict_endpoint(
    claude: ClaudeModel, vertex: FakeVertex
) -> None:
    call = ToolCall(id="toolu_01A", name="add_task", arguments={"title": "milk"})
    vertex.reply(
        claude_reply(
            {"type": "text", "text": "Adding it."},
            {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments},
            stop_reason="tool_use",
        )
    )
    vertex.reply(claude_reply({"type": "text", "text": "Added milk."}))
    vertex.reply(claude_reply({"type": "text", "text": "You have one task: milk."}))
    tools = [ADD_TASK, LIST_TASKS]

    history: list[Message] = [UserTurn("add milk")]
    asked = claude.call(history, tools, CONFIG)
    history += [
        AssistantTurn(asked.text, asked.tool_calls),
        ToolResult(call.id, call.name, {"task": {"id": 1, "title": "milk"}}),
    ]
    answered = claude.call(history, tools, CONFIG)
    history += [AssistantTurn(answered.text), UserTurn("what is on my list?")]
    final = claude.call(history, tools, CONFIG)

    assert asked.tool_calls == (call,)
    assert (answered.text, final.text) == ("Added milk.", "You have one task: milk.")
    assert [request.path.rsplit(":", 1)[1] for request in vertex.requests] == ["rawPredict"] * 3
    assert {request.body["anthropic_version"] for request in vertex.requests} == {
        VERTEX_ANTHROPIC_VERSION
    }
    assert all("model" not in request.body for request in vertex.requests)
    sent = vertex.last.body["messages"]
    assert [turn["role"] for turn in sent] == ["user", "assistant", "user", "assistant", "user"]
    assert sent[1]["content"][-1] == {
        "type": "tool_use",
        "id": "toolu_01A",
        "name": "add_task",
        "input": {"title": "milk"},
    }
    assert sent[2]["content"] == [
        {
            "type": "tool_result",
            "tool_use_id": "toolu_01A",
            "content": json.dumps({"task": {"id": 1, "title": "milk"}}),
            "is_error": False,
        }
    ]
    assert sent[3]["content"] == [{"type": "text", "text": "Added milk."}]
    assert sent[4]["content"] == [{"type": "text", "text": "what is on my list?"}]


def test_a_model_the_project_cannot_use_is_not_found_without_consuming_a_reply(
    claude: ClaudeModel, vertex: FakeVertex
) -> None:
    vertex.reply(claude_reply({"type": "text", "text": "kept"}))

    with pytest.raises(LLMError) as raised:
        claude.call(
            [UserTurn("hi")], [], LLMConfig(model="claude-3-5-sonnet@20240620", timeout_seconds=5)
        )

    assert (raised.value.kind, raised.value.retryable, raised.value.status) == (
        "model_not_found",
        False,
        404,
    )
    assert "publishers/anthropic/models/claude-3-5-sonnet@20240620` was not found" in str(
        raised.value
    )
    assert claude.call([UserTurn("hi")], [], CONFIG).text == "kept"


@pytest.mark.parametrize(
    ("status", "error_type", "kind"),
    [
        (429, "rate_limit_error", "rate_limited"),
        (529, "overloaded_error", "server"),
        (500, "api_error", "server"),
        (404, "not_found_error", "model_not_found"),
    ],
)
def test_errors_in_anthropic_format_are_classified(
    claude: ClaudeModel, vertex: FakeVertex, status: int, error_type: str, kind: str
) -> None:
    vertex.anthropic_error(status, error_type, f"{error_type} from upstream")

    with pytest.raises(LLMError) as raised:
        claude.call([UserTurn("hi")], [], CONFIG)

    assert (raised.value.kind, raised.value.status) == (kind, status)
    assert f"{error_type} from upstream" in str(raised.value)


def test_vertex_resource_exhausted_is_rate_limited(claude: ClaudeModel, vertex: FakeVertex) -> None:
    vertex.resource_exhausted()

    with pytest.raises(LLMError) as raised:
        claude.call([UserTurn("hi")], [], CONFIG)

    assert (raised.value.kind, raised.value.retryable) == ("rate_limited", True)
    assert RESOURCE_EXHAUSTED_MESSAGE[:40] in str(raised.value)


def test_a_prompt_over_the_context_window_is_a_bad_request(
    claude: ClaudeModel, vertex: FakeVertex
) -> None:
    vertex.context_window = 60
    vertex.reply(claude_reply({"type": "text", "text": "must not be served"}))

    with pytest.raises(LLMError) as raised:
        claude.call([UserTurn("x" * 400)], [], CONFIG)

    assert (raised.value.kind, raised.value.status) == ("bad_request", 400)
    assert "prompt is too long" in str(raised.value)
    assert "> 60 maximum" in str(raised.value)
    assert vertex.pending == 1


def test_max_tokens_above_the_model_ceiling_is_a_bad_request(
    claude: ClaudeModel, vertex: FakeVertex
) -> None:
    vertex.reply(claude_reply({"type": "text", "text": "must not be served"}))

    with pytest.raises(LLMError) as raised:
        claude.call([UserTurn("hi")], [], LLMConfig(model=MODEL, max_output_tokens=100_000))

    assert raised.value.kind == "bad_request"
    assert "max_tokens: 100000 > 64000" in str(raised.value)


def test_the_endpoint_refuses_a_token_it_does_not_accept(
    claude: ClaudeModel, vertex: FakeVertex
) -> None:
    vertex.authorize = lambda token: token == "another-token"

    with pytest.raises(LLMError) as raised:
        claude.call([UserTurn("hi")], [], CONFIG)

    assert (raised.value.kind, raised.value.status) == ("auth", 401)
    assert "UNAUTHENTICATED" in str(raised.value)


# The strict endpoint, driven by hand-made bodies: a valid one, then one break per rule.

_VALID_BODY: dict[str, Any] = {
    "anthropic_version": VERTEX_ANTHROPIC_VERSION,
    "max_tokens": 64,
    "tools": [{"name": "add_task", "input_schema": {"type": "object"}}],
    "messages": [
        {"role": "user", "content": "add milk"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "add_task", "input": {"t": "milk"}}
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "added"},
                {"type": "text", "text": "thanks"},
            ],
        },
    ],
}


def _post(vertex: FakeVertex, body: dict[str, Any], *, specifier: str = "rawPredict") -> Any:
    path = (
        f"/v1/projects/{PROJECT}/locations/{LOCATION}"
        f"/publishers/anthropic/models/{MODEL}:{specifier}"
    )
    return httpx.post(vertex.url + path, json=body, timeout=5)


def _broken(change: Any) -> dict[str, Any]:
    body = copy.deepcopy(_VALID_BODY)
    change(body)
    return body


def _assert_rejected(vertex: FakeVertex, body: dict[str, Any], fragment: str) -> None:
    vertex.reply(claude_reply({"type": "text", "text": "must not be served"}))

    response = _post(vertex, body)

    assert response.status_code == 400
    error = response.json()
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert fragment in error["error"]["message"]


def test_the_strict_endpoint_accepts_a_valid_body_on_both_predict_routes(
    vertex: FakeVertex,
) -> None:
    vertex.reply(claude_reply({"type": "text", "text": "ok"}))
    vertex.reply(claude_reply({"type": "text", "text": "ok"}))

    assert _post(vertex, _VALID_BODY).status_code == 200
    assert _post(vertex, _VALID_BODY, specifier="streamRawPredict").status_code == 200


def test_the_strict_endpoint_rejects_a_missing_or_first_party_anthropic_version(
    vertex: FakeVertex,
) -> None:
    _assert_rejected(vertex, _broken(lambda b: b.pop("anthropic_version")), "anthropic_version")
    _assert_rejected(
        vertex, _broken(lambda b: b.update(anthropic_version="2023-06-01")), "anthropic_version"
    )
    assert len(vertex.requests) == 2


def test_the_strict_endpoint_rejects_a_model_in_the_body(vertex: FakeVertex) -> None:
    _assert_rejected(vertex, _broken(lambda b: b.update(model=MODEL)), "model")


def test_the_strict_endpoint_rejects_a_missing_or_non_positive_max_tokens(
    vertex: FakeVertex,
) -> None:
    _assert_rejected(vertex, _broken(lambda b: b.pop("max_tokens")), "max_tokens")
    _assert_rejected(vertex, _broken(lambda b: b.update(max_tokens=0)), "max_tokens")


def test_the_strict_endpoint_rejects_empty_messages(vertex: FakeVertex) -> None:
    _assert_rejected(vertex, _broken(lambda b: b.update(messages=[])), "messages")


def test_the_strict_endpoint_rejects_a_conversation_that_starts_with_the_assistant(
    vertex: FakeVertex,
) -> None:
    body = _broken(lambda b: b.update(messages=[{"role": "assistant", "content": "Hi"}]))

    _assert_rejected(vertex, body, "first message")


def test_the_strict_endpoint_rejects_consecutive_turns_of_one_role(vertex: FakeVertex) -> None:
    body = _broken(lambda b: b["messages"].append({"role": "user", "content": "and more"}))

    _assert_rejected(vertex, body, "messages.3: roles must alternate")


def test_the_strict_endpoint_rejects_a_tool_use_left_unanswered(vertex: FakeVertex) -> None:
    body = _broken(lambda b: b["messages"][2].update(content=[{"type": "text", "text": "hm"}]))

    _assert_rejected(vertex, body, "without `tool_result` blocks immediately after: toolu_1")


def test_the_strict_endpoint_rejects_a_tool_use_answered_only_later(vertex: FakeVertex) -> None:
    def answer_late(body: dict[str, Any]) -> None:
        result = body["messages"][2]
        body["messages"][2] = {"role": "user", "content": "wait"}
        body["messages"] += [{"role": "assistant", "content": "ok"}, result]

    _assert_rejected(vertex, _broken(answer_late), "messages.1: `tool_use` ids")


def test_the_strict_endpoint_rejects_text_before_a_tool_result(vertex: FakeVertex) -> None:
    body = _broken(lambda b: b["messages"][2]["content"].reverse())

    _assert_rejected(vertex, body, "`tool_result` blocks must come first")


def test_the_strict_endpoint_rejects_a_tool_result_for_an_unknown_tool_use(
    vertex: FakeVertex,
) -> None:
    extra = {"type": "tool_result", "tool_use_id": "toolu_9", "content": "?"}
    body = _broken(lambda b: b["messages"][2]["content"].insert(1, extra))

    _assert_rejected(
        vertex, body, "unexpected `tool_use_id` found in `tool_result` blocks: toolu_9"
    )


def test_the_strict_endpoint_rejects_a_tool_without_an_object_input_schema(
    vertex: FakeVertex,
) -> None:
    _assert_rejected(vertex, _broken(lambda b: b["tools"][0].pop("name")), "tools.0.name")
    _assert_rejected(
        vertex, _broken(lambda b: b["tools"][0].pop("input_schema")), "tools.0.input_schema"
    )
    _assert_rejected(
        vertex,
        _broken(lambda b: b["tools"][0].update(input_schema={"type": "array"})),
        "tools.0.input_schema.type",
    )


def test_a_rejected_request_is_recorded_but_consumes_no_scripted_reply(
    vertex: FakeVertex,
) -> None:
    vertex.reply(claude_reply({"type": "text", "text": "kept"}))

    assert _post(vertex, _broken(lambda b: b.pop("max_tokens"))).status_code == 400
    served = _post(vertex, _VALID_BODY)

    assert served.json()["content"] == [{"type": "text", "text": "kept"}]
    assert len(vertex.requests) == 2
