"""What GET /v1/threads/{id} shows of a conversation the real engine has worked on."""

from __future__ import annotations

from flask.testing import FlaskClient
from tests.api.conftest import start
from tests.engine.doubles import EchoTools, ScriptedModel, calls, text

from messagedb_agent.engine.effects import EngineConfig
from messagedb_agent.engine.runner import run_until_idle
from messagedb_agent.engine.step import Engine
from messagedb_agent.events import TokenUsage
from messagedb_agent.llm.types import LLMResponse
from messagedb_agent.notification import Notification
from messagedb_agent.store.client import MessageStore
from messagedb_agent.store.stream_name import thread_stream


def fail(args: dict[str, object], ctx: object) -> object:
    raise ValueError("the disk is full")


def run_engine(store: MessageStore, model: ScriptedModel, thread_id: str) -> None:
    tools = EchoTools({"add": lambda args, ctx: {"sum": args["a"] + args["b"]}, "save": fail})
    engine = Engine(store, model, tools, EngineConfig(model="scripted"))
    stream = thread_stream(thread_id)
    run_until_idle(
        engine, Notification(stream_name=stream, position=store.stream_version(stream) or 0)
    )


def test_tool_calls_show_their_arguments_results_and_errors(
    client: FlaskClient, auth: dict[str, str], store: MessageStore
) -> None:
    thread_id = start(client, auth, "add then save")
    model = ScriptedModel(
        [
            calls(("add", {"a": 1, "b": 2}), ("save", {"path": "/x"})),
            LLMResponse(
                text="3, but I could not save it.",
                tool_calls=(),
                model_name="scripted",
                token_usage=TokenUsage(input_tokens=12, output_tokens=5),
            ),
        ]
    )

    run_engine(store, model, thread_id)
    detail = client.get(f"/v1/threads/{thread_id}", headers=auth).get_json()

    add, save = detail["tool_calls"]
    assert (add["name"], add["status"], add["result"], add["error"]) == (
        "add",
        "completed",
        {"sum": 3},
        None,
    )
    assert (save["name"], save["arguments"], save["status"]) == ("save", {"path": "/x"}, "failed")
    assert "the disk is full" in save["error"]
    assert [(m["role"], m["text"]) for m in detail["messages"]] == [
        ("user", "add then save"),
        ("assistant", "3, but I could not save it."),
    ]
    assert detail["token_usage"] == {
        "input_tokens": 12,
        "output_tokens": 5,
        "total_tokens": 17,
        "cached_input_tokens": 0,
        "thinking_tokens": 0,
    }
    assert detail["counts"]["tool_errors"] == 1


def test_repeated_call_ids_across_responses_stay_separate(
    client: FlaskClient, auth: dict[str, str], store: MessageStore
) -> None:
    thread_id = start(client, auth, "twice")
    model = ScriptedModel(
        [calls(("add", {"a": 1, "b": 1})), calls(("add", {"a": 2, "b": 2})), text("2 and 4")]
    )

    run_engine(store, model, thread_id)
    detail = client.get(f"/v1/threads/{thread_id}", headers=auth).get_json()

    assert [c["id"] for c in detail["tool_calls"]] == ["c0", "c0"]
    assert [c["result"] for c in detail["tool_calls"]] == [{"sum": 2}, {"sum": 4}]


def test_the_closing_message_of_an_ended_thread_is_shown(
    client: FlaskClient, auth: dict[str, str], store: MessageStore
) -> None:
    thread_id = start(client, auth, None)
    client.post(f"/v1/threads/{thread_id}/end", headers=auth)

    run_engine(store, ScriptedModel(), thread_id)
    detail = client.get(f"/v1/threads/{thread_id}", headers=auth).get_json()
    listed = client.get("/v1/threads", headers=auth).get_json()["threads"]

    assert detail["status"] == "terminated"
    assert detail["completion_reason"] == "terminated"
    assert detail["messages"][-1]["role"] == "assistant"
    assert listed[0]["status"] == "terminated"
    assert client.post(f"/v1/threads/{thread_id}/end", headers=auth).status_code == 200
