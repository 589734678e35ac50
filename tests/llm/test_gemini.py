"""Gemini through the real `google.genai` SDK against a local Vertex endpoint.

Each test asserts on the JSON the SDK actually sent and on how the reply was read back.
"""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest
from google.oauth2.credentials import Credentials
from tests.llm.conftest import LOCATION, PROJECT, TOKEN
from tests.llm.fake_vertex import (
    QUOTA_EXCEEDED_MESSAGE,
    SKIP_SIGNATURE,
    FakeVertex,
    gemini_blocked_prompt,
    gemini_reply,
)

from messagedb_agent.events.values import TokenUsage, ToolCall
from messagedb_agent.llm.gemini import GeminiModel
from messagedb_agent.llm.types import (
    AssistantTurn,
    LLMConfig,
    LLMError,
    Message,
    ToolResult,
    ToolSpec,
    UserTurn,
)

MODEL = "gemini-2.5-flash"
CONFIG = LLMConfig(model=MODEL, system_prompt="You manage tasks.", timeout_seconds=5)
ADD_TASK = ToolSpec(
    "add_task",
    "Add a task to the user's list.",
    {
        "type": "object",
        "properties": {
            "title": {"type": "string", "minLength": 1},
            "description": {"type": ["string", "null"]},
        },
        "required": ["title"],
        "additionalProperties": False,
    },
)
LIST_TASKS = ToolSpec(
    "list_tasks",
    "List the user's tasks.",
    {"type": "object", "properties": {"status": {"enum": ["all", "pending", "completed"]}}},
)


def _schema(declaration: dict[str, Any]) -> Any:
    """The SDK may spell the JSON-schema field either way; Vertex accepts both."""
    return declaration.get("parametersJsonSchema", declaration.get("parameters_json_schema"))


def test_text_reply_sends_system_instruction_and_user_content(
    gemini: GeminiModel, vertex: FakeVertex
) -> None:
    vertex.reply(gemini_reply({"text": "Hello "}, {"text": "there."}))
    config = LLMConfig(
        model=MODEL, system_prompt="Be brief.", temperature=0.2, max_output_tokens=256
    )

    response = gemini.call([UserTurn("Hi!")], [], config)

    assert response.text == "Hello there."
    assert response.tool_calls == ()
    assert response.finish_reason == "stop"
    assert response.model_name == "gemini-2.5-flash-001"
    sent = vertex.last
    assert sent.api == "gemini"
    assert sent.params == {
        "project": PROJECT,
        "location": LOCATION,
        "model": MODEL,
        "method": "generateContent",
    }
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.body["systemInstruction"]["parts"] == [{"text": "Be brief."}]
    assert sent.body["contents"] == [{"role": "user", "parts": [{"text": "Hi!"}]}]
    assert sent.body["generationConfig"] == {"temperature": 0.2, "maxOutputTokens": 256}
    assert "tools" not in sent.body


def test_usage_metadata_becomes_token_usage(gemini: GeminiModel, vertex: FakeVertex) -> None:
    vertex.reply(
        gemini_reply(
            {"text": "ok"},
            prompt_tokens=120,
            output_tokens=30,
            cached_tokens=40,
            thoughts_tokens=12,
        )
    )

    response = gemini.call([UserTurn("Hi")], [], CONFIG)

    # The prompt count already holds the cached part; thinking is output billed on its own.
    assert response.token_usage == TokenUsage(
        input_tokens=120, output_tokens=42, cached_input_tokens=40, thinking_tokens=12
    )


def test_tools_are_declared_with_their_json_schema(gemini: GeminiModel, vertex: FakeVertex) -> None:
    vertex.reply(gemini_reply({"text": "ok"}))

    gemini.call([UserTurn("Hi")], [ADD_TASK, LIST_TASKS], CONFIG)

    (tool,) = vertex.last.body["tools"]
    declarations = tool["functionDeclarations"]
    assert [d["name"] for d in declarations] == ["add_task", "list_tasks"]
    assert declarations[0]["description"] == "Add a task to the user's list."
    assert _schema(declarations[0]) == ADD_TASK.parameters
    assert _schema(declarations[1]) == LIST_TASKS.parameters


def test_function_call_without_id_gets_a_deterministic_one(
    gemini: GeminiModel, vertex: FakeVertex
) -> None:
    call_part = {"functionCall": {"name": "add_task", "args": {"title": "buy milk"}}}
    vertex.reply(gemini_reply(call_part))
    vertex.reply(gemini_reply(call_part))

    first = gemini.call([UserTurn("add milk")], [ADD_TASK], CONFIG)
    second = gemini.call([UserTurn("add milk")], [ADD_TASK], CONFIG)

    assert first.tool_calls == (
        ToolCall(id="call_0_add_task", name="add_task", arguments={"title": "buy milk"}),
    )
    assert second.tool_calls == first.tool_calls
    assert first.finish_reason == "tool_calls"


def test_tool_round_trip_sends_function_call_and_function_response(
    gemini: GeminiModel, vertex: FakeVertex
) -> None:
    vertex.reply(gemini_reply({"text": "Added it."}))
    call = ToolCall(id="call_0_add_task", name="add_task", arguments={"title": "buy milk"})
    messages: list[Message] = [
        UserTurn("add a task to buy milk"),
        AssistantTurn("On it.", (call,)),
        ToolResult(call.id, "add_task", {"task": {"id": 1, "title": "buy milk"}}),
    ]

    response = gemini.call(messages, [ADD_TASK], CONFIG)

    assert response.text == "Added it."
    assert vertex.last.body["contents"] == [
        {"role": "user", "parts": [{"text": "add a task to buy milk"}]},
        {
            "role": "model",
            "parts": [
                {"text": "On it."},
                # The id was made up locally, so it is not sent back to Gemini.
                {"functionCall": {"name": "add_task", "args": {"title": "buy milk"}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {
                    "functionResponse": {
                        "name": "add_task",
                        "response": {"task": {"id": 1, "title": "buy milk"}},
                    }
                }
            ],
        },
    ]


def test_parallel_calls_come_back_as_one_model_turn_and_one_grouped_response(
    gemini: GeminiModel, vertex: FakeVertex
) -> None:
    vertex.reply(
        gemini_reply(
            {"functionCall": {"id": "fc-1", "name": "add_task", "args": {"title": "milk"}}},
            {"functionCall": {"id": "fc-2", "name": "add_task", "args": {"title": "dog"}}},
        )
    )
    first = gemini.call([UserTurn("add milk and dog")], [ADD_TASK], CONFIG)
    assert [c.id for c in first.tool_calls] == ["fc-1", "fc-2"]
    assert [c.arguments for c in first.tool_calls] == [{"title": "milk"}, {"title": "dog"}]

    vertex.reply(gemini_reply({"text": "Both added."}))
    gemini.call(
        [
            UserTurn("add milk and dog"),
            AssistantTurn("", first.tool_calls),
            ToolResult("fc-1", "add_task", {"task": {"id": 1}}),
            ToolResult("fc-2", "add_task", "created"),
        ],
        [ADD_TASK],
        CONFIG,
    )

    model_turn, results = vertex.last.body["contents"][1:]
    assert model_turn == {
        "role": "model",
        "parts": [
            {"functionCall": {"id": "fc-1", "name": "add_task", "args": {"title": "milk"}}},
            {"functionCall": {"id": "fc-2", "name": "add_task", "args": {"title": "dog"}}},
        ],
    }
    assert results == {
        "role": "user",
        "parts": [
            {
                "functionResponse": {
                    "id": "fc-1",
                    "name": "add_task",
                    "response": {"task": {"id": 1}},
                }
            },
            {
                "functionResponse": {
                    "id": "fc-2",
                    "name": "add_task",
                    "response": {"result": "created"},
                }
            },
        ],
    }


def test_failed_tool_results_are_sent_as_error_objects(
    gemini: GeminiModel, vertex: FakeVertex
) -> None:
    vertex.reply(gemini_reply({"text": "Sorry."}))
    calls = (
        ToolCall(id="a", name="add_task", arguments={"title": "x"}),
        ToolCall(id="b", name="list_tasks", arguments={}),
    )
    gemini.call(
        [
            UserTurn("do it"),
            AssistantTurn("", calls),
            ToolResult("a", "add_task", {"error": "title taken", "kind": "conflict"}, True),
            ToolResult("b", "list_tasks", "database down", True),
            UserTurn("and also this"),
        ],
        [ADD_TASK, LIST_TASKS],
        CONFIG,
    )

    contents = vertex.last.body["contents"]
    answers = contents[2]["parts"]
    responses = [part["functionResponse"]["response"] for part in answers[:2]]
    assert responses == [{"error": "title taken", "kind": "conflict"}, {"error": "database down"}]
    assert answers[2:] == [{"text": "and also this"}]
    assert len(contents) == 3


def test_gemini_3_replays_calls_with_the_signature_placeholder(
    gemini: GeminiModel, vertex: FakeVertex
) -> None:
    calls = (
        ToolCall(id="a", name="add_task", arguments={"title": "x"}),
        ToolCall(id="b", name="add_task", arguments={"title": "y"}),
    )
    messages: list[Message] = [
        UserTurn("go"),
        AssistantTurn("", calls),
        ToolResult("a", "add_task", {}),
        ToolResult("b", "add_task", {}),
    ]
    vertex.reply(gemini_reply({"text": "done"}))
    vertex.reply(gemini_reply({"text": "done"}))

    gemini.call(messages, [ADD_TASK], LLMConfig(model="gemini-3.1-pro-preview"))
    signed = vertex.last.body["contents"][1]["parts"]
    gemini.call(messages, [ADD_TASK], LLMConfig(model="gemini-2.5-pro"))
    unsigned = vertex.last.body["contents"][1]["parts"]

    assert [part.get("thoughtSignature") for part in signed] == [
        "skip_thought_signature_validator",
        None,
    ]
    assert all("thoughtSignature" not in part for part in unsigned)


def test_thought_parts_are_not_part_of_the_answer(gemini: GeminiModel, vertex: FakeVertex) -> None:
    vertex.reply(gemini_reply({"text": "Let me think...", "thought": True}, {"text": "42"}))

    response = gemini.call([UserTurn("answer?")], [], CONFIG)

    assert response.text == "42"


def test_a_reply_cut_at_the_output_limit_is_truncated_and_names_the_limit(
    gemini: GeminiModel, vertex: FakeVertex
) -> None:
    vertex.reply(
        gemini_reply({"text": "The story begins"}, finish_reason="MAX_TOKENS", thoughts_tokens=90)
    )

    with pytest.raises(LLMError) as raised:
        gemini.call([UserTurn("tell a story")], [], LLMConfig(model=MODEL, max_output_tokens=100))

    assert (raised.value.kind, raised.value.retryable) == ("truncated", True)
    assert "max_output_tokens=100" in str(raised.value)
    assert "90 of them thinking" in str(raised.value)
    assert vertex.last.body["generationConfig"]["maxOutputTokens"] == 100


def test_a_cut_text_reply_is_returned_once_the_caller_accepts_one(
    gemini: GeminiModel, vertex: FakeVertex
) -> None:
    vertex.reply(gemini_reply({"text": "The story begins"}, finish_reason="MAX_TOKENS"))
    config = LLMConfig(model=MODEL, max_output_tokens=100, accept_truncated=True)

    response = gemini.call([UserTurn("tell a story")], [], config)

    assert (response.text, response.tool_calls) == ("The story begins", ())
    assert response.finish_reason == "max_tokens"


@pytest.mark.parametrize(
    "parts",
    [
        ({"text": "Adding"}, {"functionCall": {"name": "add_task", "args": {"title": "bu"}}}),
        ({"functionCall": {"name": "add_task", "args": {}}},),
        (),
    ],
    ids=["text-and-call", "call-only", "no-parts"],
)
def test_a_cut_reply_without_a_whole_text_answer_is_truncated_even_when_accepted(
    gemini: GeminiModel, vertex: FakeVertex, parts: tuple[dict[str, Any], ...]
) -> None:
    vertex.reply(gemini_reply(*parts, finish_reason="MAX_TOKENS"))
    config = LLMConfig(model=MODEL, max_output_tokens=64, accept_truncated=True)

    with pytest.raises(LLMError) as raised:
        gemini.call([UserTurn("add buy milk")], [ADD_TASK], config)

    assert raised.value.kind == "truncated"


@pytest.mark.parametrize("finish_reason", ["STOP", "OTHER"])
def test_a_candidate_without_parts_is_an_empty_reply(
    gemini: GeminiModel, vertex: FakeVertex, finish_reason: str
) -> None:
    vertex.reply(gemini_reply(finish_reason=finish_reason))

    with pytest.raises(LLMError) as raised:
        gemini.call([UserTurn("hi")], [], CONFIG)

    assert (raised.value.kind, raised.value.retryable) == ("empty", True)
    assert finish_reason in str(raised.value)


def test_a_reply_of_thoughts_only_is_an_empty_reply(
    gemini: GeminiModel, vertex: FakeVertex
) -> None:
    vertex.reply(gemini_reply({"text": "Let me think...", "thought": True}))

    with pytest.raises(LLMError) as raised:
        gemini.call([UserTurn("hi")], [], CONFIG)

    assert raised.value.kind == "empty"


@pytest.mark.filterwarnings("ignore:MODEL_ARMOR is not a valid FinishReason")
def test_a_response_screened_by_model_armor_is_a_safety_error(
    gemini: GeminiModel, vertex: FakeVertex
) -> None:
    vertex.reply(gemini_reply(finish_reason="MODEL_ARMOR"))

    with pytest.raises(LLMError) as raised:
        gemini.call([UserTurn("hi")], [], CONFIG)

    assert (raised.value.kind, raised.value.retryable) == ("safety", False)
    assert "MODEL_ARMOR" in str(raised.value)


@pytest.mark.parametrize("reason", ["MODEL_ARMOR", "JAILBREAK", "PROHIBITED_CONTENT"])
def test_a_blocked_prompt_is_a_safety_error(
    gemini: GeminiModel, vertex: FakeVertex, reason: str
) -> None:
    vertex.reply(gemini_blocked_prompt(reason, message="screened by policy"))

    with pytest.raises(LLMError) as raised:
        gemini.call([UserTurn("something prohibited")], [], CONFIG)

    assert (raised.value.kind, raised.value.retryable) == ("safety", False)
    assert reason in str(raised.value)
    assert "screened by policy" in str(raised.value)


def test_calls_ended_by_stop_are_tool_calls_and_text_ended_by_stop_is_stop(
    gemini: GeminiModel, vertex: FakeVertex
) -> None:
    vertex.reply(gemini_reply({"functionCall": {"name": "list_tasks", "args": {}}}))
    vertex.reply(gemini_reply({"text": "Nothing to do."}))

    called = gemini.call([UserTurn("list")], [LIST_TASKS], CONFIG)
    answered = gemini.call([UserTurn("list")], [LIST_TASKS], CONFIG)

    assert (called.finish_reason, answered.finish_reason) == ("tool_calls", "stop")


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (429, "rate_limited", True),
        (500, "server", True),
        (503, "server", True),
        (400, "bad_request", False),
        (404, "model_not_found", False),
        (401, "auth", False),
        (403, "auth", False),
    ],
)
def test_http_errors_are_classified_without_sdk_retries(
    gemini: GeminiModel, vertex: FakeVertex, status: int, kind: str, retryable: bool
) -> None:
    vertex.error(status, f"upstream says {status}")
    vertex.reply(gemini_reply({"text": "a retry would have succeeded"}))

    with pytest.raises(LLMError) as raised:
        gemini.call([UserTurn("hi")], [], CONFIG)

    assert (raised.value.kind, raised.value.retryable, raised.value.status) == (
        kind,
        retryable,
        status,
    )
    assert f"upstream says {status}" in str(raised.value)
    assert len(vertex.requests) == 1


def test_a_blocked_response_is_a_safety_error(gemini: GeminiModel, vertex: FakeVertex) -> None:
    vertex.reply(gemini_reply(finish_reason="SAFETY"))

    with pytest.raises(LLMError) as raised:
        gemini.call([UserTurn("something unsafe")], [], CONFIG)

    assert (raised.value.kind, raised.value.retryable) == ("safety", False)
    assert "SAFETY" in str(raised.value)


def test_a_malformed_call_is_a_retryable_bad_response(
    gemini: GeminiModel, vertex: FakeVertex
) -> None:
    vertex.reply(gemini_reply(finish_reason="MALFORMED_FUNCTION_CALL"))

    with pytest.raises(LLMError) as raised:
        gemini.call([UserTurn("add")], [ADD_TASK], CONFIG)

    assert (raised.value.kind, raised.value.retryable) == ("bad_response", True)


def test_a_slow_endpoint_times_out_once(gemini: GeminiModel, vertex: FakeVertex) -> None:
    vertex.reply(gemini_reply({"text": "too late"}), delay=2.0)

    with pytest.raises(LLMError) as raised:
        gemini.call([UserTurn("hi")], [], LLMConfig(model=MODEL, timeout_seconds=0.3))

    assert (raised.value.kind, raised.value.retryable) == ("timeout", True)
    assert len(vertex.requests) == 1


def test_an_unreachable_endpoint_is_unavailable(credentials: Credentials) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    model = GeminiModel(
        project=PROJECT,
        location=LOCATION,
        base_url=f"http://127.0.0.1:{port}",
        credentials=credentials,
    )

    with pytest.raises(LLMError) as raised:
        model.call([UserTurn("hi")], [], CONFIG)

    assert (raised.value.kind, raised.value.retryable) == ("unavailable", True)


def test_credentials_that_cannot_refresh_are_an_auth_error(vertex: FakeVertex) -> None:
    model = GeminiModel(
        project=PROJECT,
        location=LOCATION,
        base_url=vertex.url,
        credentials=Credentials(token=None),  # type: ignore[no-untyped-call]
    )

    with pytest.raises(LLMError) as raised:
        model.call([UserTurn("hi")], [], CONFIG)

    assert (raised.value.kind, raised.value.retryable) == ("auth", False)
    assert vertex.requests == []


def test_tool_results_and_the_user_message_after_them_are_one_user_content(
    gemini: GeminiModel, vertex: FakeVertex
) -> None:
    vertex.reply(gemini_reply({"text": "ok"}))
    call = ToolCall(id="a", name="add_task", arguments={"title": "x"})

    gemini.call(
        [
            UserTurn("add x"),
            UserTurn("please"),
            AssistantTurn("", (call,)),
            UserTurn("quick!"),
            ToolResult("a", "add_task", {"ok": True}),
        ],
        [ADD_TASK],
        CONFIG,
    )

    contents = vertex.last.body["contents"]
    assert [content["role"] for content in contents] == ["user", "model", "user"]
    assert contents[0]["parts"] == [{"text": "add x"}, {"text": "please"}]
    assert [list(part) for part in contents[2]["parts"]] == [["functionResponse"], ["text"]]


def test_gemini_3_calls_go_back_with_the_signature_they_came_with(
    gemini: GeminiModel, vertex: FakeVertex
) -> None:
    config = LLMConfig(model="gemini-3.1-pro-preview", timeout_seconds=5)
    vertex.reply(gemini_reply({"functionCall": {"id": "c1", "name": "add_task", "args": {"t": 1}}}))
    vertex.reply(gemini_reply({"text": "Added."}))
    vertex.reply(gemini_reply({"text": "One task."}))

    history: list[Message] = [UserTurn("add one")]
    asked = gemini.call(history, [ADD_TASK], config)
    history += [
        AssistantTurn(asked.text, asked.tool_calls, asked.thought_signatures),
        ToolResult("c1", "add_task", {"ok": True}),
    ]
    answered = gemini.call(history, [ADD_TASK], config)
    history += [AssistantTurn(answered.text), UserTurn("how many?")]
    final = gemini.call(history, [ADD_TASK], config)

    issued = list(vertex.issued_signatures.values())
    assert asked.thought_signatures == {"c1": issued[0]}
    assert final.text == "One task."
    replayed = vertex.last.body["contents"][1]["parts"][0]
    assert replayed["thoughtSignature"] == issued[0] != SKIP_SIGNATURE


def test_the_strict_endpoint_rejects_a_gemini_3_call_replayed_without_its_signature(
    gemini: GeminiModel, vertex: FakeVertex
) -> None:
    config = LLMConfig(model="gemini-3.1-pro-preview", timeout_seconds=5)
    vertex.reply(gemini_reply({"functionCall": {"id": "c1", "name": "add_task", "args": {}}}))
    asked = gemini.call([UserTurn("add")], [ADD_TASK], config)
    vertex.reply(gemini_reply({"text": "must not be served"}))

    with pytest.raises(LLMError) as raised:
        gemini.call(
            [
                UserTurn("add"),
                AssistantTurn(asked.text, asked.tool_calls),
                ToolResult("c1", "add_task", {}),
            ],
            [ADD_TASK],
            config,
        )

    assert raised.value.status == 400
    assert "Corrupted thought signature" in str(raised.value)


def _generate(vertex: FakeVertex, model: str, contents: list[dict[str, Any]]) -> Any:
    path = (
        f"/v1beta1/projects/{PROJECT}/locations/{LOCATION}"
        f"/publishers/google/models/{model}:generateContent"
    )
    vertex.reply(gemini_reply({"text": "must not be served"}))
    return httpx.post(vertex.url + path, json={"contents": contents}, timeout=5)


_CALL: dict[str, Any] = {
    "role": "model",
    "parts": [{"functionCall": {"name": "add_task", "args": {}}}],
}
_ANSWER: dict[str, Any] = {
    "role": "user",
    "parts": [{"functionResponse": {"name": "add_task", "response": {}}}],
}
_ASK: dict[str, Any] = {"role": "user", "parts": [{"text": "add"}]}
_SAY: dict[str, Any] = {"role": "model", "parts": [{"text": "sure"}]}


@pytest.mark.parametrize(
    ("model", "contents", "fragment"),
    [
        (MODEL, [], "contents is not specified"),
        (MODEL, [_ASK, _ASK], "two adjacent contents have the role 'user'"),
        (MODEL, [_ASK, _CALL, _ASK], "number of function response parts"),
        (MODEL, [_ASK, _SAY, _ANSWER], "number of function response parts"),
        ("gemini-3.1-pro-preview", [_ASK, _CALL, _ANSWER], "missing a `thought_signature`"),
        ("gemini-4-argon", [_ASK, _CALL, _ANSWER], "missing a `thought_signature`"),
        (
            "gemini-3.1-pro-preview",
            [
                _ASK,
                {"role": "model", "parts": [_CALL["parts"][0] | {"thoughtSignature": "Zm9yZ2Vk"}]},
                _ANSWER,
            ],
            "Invalid thought signature",
        ),
    ],
)
def test_the_strict_endpoint_rejects_each_broken_gemini_rule(
    vertex: FakeVertex, model: str, contents: list[dict[str, Any]], fragment: str
) -> None:
    response = _generate(vertex, model, contents)

    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert fragment in response.json()["error"]["message"]


def test_the_strict_endpoint_accepts_the_placeholder_for_an_unsigned_gemini_3_call(
    vertex: FakeVertex,
) -> None:
    call = {"role": "model", "parts": [_CALL["parts"][0] | {"thoughtSignature": SKIP_SIGNATURE}]}

    assert _generate(vertex, "gemini-3.1-pro-preview", [_ASK, call, _ANSWER]).status_code == 200


def test_a_shut_down_model_is_not_found_without_consuming_a_reply(
    gemini: GeminiModel, vertex: FakeVertex
) -> None:
    vertex.reply(gemini_reply({"text": "kept"}))
    shut_down = LLMConfig(model="gemini-3-pro-preview", timeout_seconds=5)

    with pytest.raises(LLMError) as raised:
        gemini.call([UserTurn("hi")], [], shut_down)

    assert (raised.value.kind, raised.value.retryable, raised.value.status) == (
        "model_not_found",
        False,
        404,
    )
    assert "Publisher Model `projects/demo-project/locations/us-central1" in str(raised.value)
    assert "404 NOT_FOUND" in str(raised.value)
    assert gemini.call([UserTurn("hi")], [], CONFIG).text == "kept"


@pytest.mark.parametrize(
    "message",
    [
        "Resource exhausted. Please try again later.",
        QUOTA_EXCEEDED_MESSAGE.format(model="gemini-2.5-flash"),
    ],
    ids=["shared-capacity", "project-quota"],
)
def test_resource_exhausted_is_rate_limited_whatever_the_message(
    gemini: GeminiModel, vertex: FakeVertex, message: str
) -> None:
    # Google documents every 429 RESOURCE_EXHAUSTED as worth retrying after a few seconds;
    # nothing in the body tells a quota of zero from one used up, so neither is an operator
    # fault here.
    vertex.resource_exhausted(message)

    with pytest.raises(LLMError) as raised:
        gemini.call([UserTurn("hi")], [], CONFIG)

    assert (raised.value.kind, raised.value.retryable) == ("rate_limited", True)
    assert "429 RESOURCE_EXHAUSTED" in str(raised.value)


def test_an_unavailable_service_is_a_retryable_server_error(
    gemini: GeminiModel, vertex: FakeVertex
) -> None:
    vertex.unavailable()

    with pytest.raises(LLMError) as raised:
        gemini.call([UserTurn("hi")], [], CONFIG)

    assert (raised.value.kind, raised.value.retryable) == ("server", True)
    assert "503 UNAVAILABLE" in str(raised.value)


def test_a_prompt_over_the_context_window_is_a_bad_request(
    gemini: GeminiModel, vertex: FakeVertex
) -> None:
    vertex.context_window = 50
    vertex.reply(gemini_reply({"text": "must not be served"}))

    with pytest.raises(LLMError) as raised:
        gemini.call([UserTurn("x" * 400)], [], CONFIG)

    assert (raised.value.kind, raised.value.retryable, raised.value.status) == (
        "bad_request",
        False,
        400,
    )
    assert "exceeds the maximum number of tokens allowed (50)" in str(raised.value)
    assert vertex.pending == 1


def test_an_output_budget_above_the_model_ceiling_is_a_bad_request(
    gemini: GeminiModel, vertex: FakeVertex
) -> None:
    vertex.reply(gemini_reply({"text": "must not be served"}))

    with pytest.raises(LLMError) as raised:
        gemini.call([UserTurn("hi")], [], LLMConfig(model=MODEL, max_output_tokens=100_000))

    assert raised.value.kind == "bad_request"
    assert "supported range is from 1 (inclusive) to 65536 (exclusive)" in str(raised.value)


def test_the_endpoint_refuses_a_token_it_does_not_accept(
    gemini: GeminiModel, vertex: FakeVertex
) -> None:
    vertex.authorize = lambda token: token == "another-token"
    vertex.reply(gemini_reply({"text": "must not be served"}))

    with pytest.raises(LLMError) as raised:
        gemini.call([UserTurn("hi")], [], CONFIG)

    assert (raised.value.kind, raised.value.status) == ("auth", 401)
    assert "UNAUTHENTICATED" in str(raised.value)
    assert vertex.pending == 1


def test_a_two_turn_tool_conversation_passes_the_strict_endpoint(
    gemini: GeminiModel, vertex: FakeVertex
) -> None:
    config = LLMConfig(model="gemini-3.5-flash", max_output_tokens=8192, timeout_seconds=5)
    tools = [ADD_TASK, LIST_TASKS]
    vertex.reply(
        gemini_reply(
            {"text": "Adding it."},
            {"functionCall": {"name": "add_task", "args": {"title": "milk"}}},
            thoughts_tokens=20,
        )
    )
    vertex.reply(gemini_reply({"text": "Added milk."}))
    vertex.reply(gemini_reply({"functionCall": {"name": "list_tasks", "args": {}}}))
    vertex.reply(gemini_reply({"text": "You have one task: milk."}))

    history: list[Message] = [UserTurn("add milk")]
    for result, follow_up in (
        ({"task": {"id": 1, "title": "milk"}}, "what is on my list?"),
        ({"tasks": [{"id": 1, "title": "milk"}]}, None),
    ):
        asked = gemini.call(history, tools, config)
        (call,) = asked.tool_calls
        history += [
            AssistantTurn(asked.text, asked.tool_calls, asked.thought_signatures),
            ToolResult(call.id, call.name, result),
        ]
        answered = gemini.call(history, tools, config)
        history.append(AssistantTurn(answered.text))
        if follow_up:
            history.append(UserTurn(follow_up))

    assert answered.text == "You have one task: milk."
    contents = vertex.last.body["contents"]
    assert [content["role"] for content in contents] == ["user", "model"] * 3 + ["user"]
    signatures = [
        part.get("thoughtSignature")
        for content in contents
        for part in content["parts"]
        if "functionCall" in part
    ]
    assert signatures == list(vertex.issued_signatures.values())
    assert len(set(signatures)) == 2
