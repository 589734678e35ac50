"""A running stack whose step function calls Gemini with the real SDK. The model is the strict
Vertex stand-in (it checks the token google-auth got from the local token endpoint with a
service-account key, and the request's shape).

- A cancel issued while a model call is in flight: the ingest function takes the cancel while
  the step function waits for the model, made slow for that call.
- The model's reply streamed (`streamGenerateContent`, paced piece by piece) reaches a client of
  the ingest function's SSE stream piece by piece, well before the reply's event is recorded.
- A stream the service breaks off in the middle: the client sees that attempt's message ended,
  then the retry's text as a message of its own, in a sequence an AG-UI client accepts.

This stack has its own database and the Pub/Sub emulator; the directory's shared stack runs the
offline model, whose instant answers leave no call in flight to cancel.
"""

from __future__ import annotations

import io
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from tests.e2e.conftest import FUNCTION_ENV, KeepAliveRetry
from tests.e2e.conversation import Chat, ok, sse_messages
from tests.llm.fake_google_auth import FakeTokenEndpoint
from tests.llm.fake_vertex import FakeVertex, gemini_reply

from messagedb_agent.postgres import embedded
from messagedb_agent.postgres.connect import ensure_installed
from messagedb_agent.settings import Settings
from messagedb_agent.stack import LocalStack, StackOptions

PROJECT = "some-project"
MODEL = "gemini-3.8-flash"
THINKING = 6.0  # how long the first model call takes: the cancel lands inside it


@pytest.fixture(scope="module")
def vertex_stack(
    server_url: str, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LocalStack, FakeVertex]]:
    tokens = FakeTokenEndpoint().start()
    vertex = FakeVertex(authorize=tokens.accepts).start()
    name = f"e2e_vertex_{uuid.uuid4().hex[:10]}"
    embedded.create_database(server_url, name)
    url = urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    ensure_installed(url, settings)
    key = tokens.service_account_file(tmp_path_factory.mktemp("vertex"), project=PROJECT)
    env = {
        **FUNCTION_ENV,
        "MODEL_NAME": MODEL,
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "GOOGLE_APPLICATION_CREDENTIALS": str(key),
        "VERTEX_API_ENDPOINT": vertex.url,
        "LLM_LEASE_SECONDS": "60",  # the slow call keeps its claim: nobody takes it over
    }
    options = StackOptions.on_free_ports(
        transport="emulator",
        relay_interval=1.0,
        database_url=url,
        env=env,
        startup_timeout=60.0,
    )
    stack = LocalStack(settings, options, out=io.StringIO()).start()
    try:
        yield stack, vertex
    finally:
        stack.stop()
        vertex.stop()
        tokens.stop()
        embedded.drop_database(server_url, name)


@pytest.fixture(autouse=True)
def _fresh_script(vertex_stack: tuple[LocalStack, FakeVertex]) -> Iterator[None]:
    """Each test scripts its own replies: one left over by a failed test is dropped."""
    vertex = vertex_stack[1]
    vertex.forget()
    yield
    vertex.forget()


def _until(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"not in {timeout} s: {what}"
        time.sleep(0.1)
    return found


def _types(chat: Chat) -> list[str]:
    return [e["type"] for e in chat.events()]


def test_a_cancel_while_the_model_answers_on_the_step_function_stops_the_turn(
    vertex_stack: tuple[LocalStack, FakeVertex], tmp_path: Path
) -> None:
    stack, vertex = vertex_stack
    add = {"functionCall": {"name": "add_task", "args": {"title": "buy milk"}}}
    vertex.reply(gemini_reply({"text": "Adding it."}, add, model_version=MODEL), delay=THINKING)
    vertex.reply(gemini_reply({"text": "2 + 2 is 4."}, model_version=MODEL))
    token = stack.dev_token(f"cancel-model-{uuid.uuid4().hex[:6]}")
    with httpx.Client(
        base_url=stack.urls["ingest"],
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
        transport=KeepAliveRetry(),
    ) as http:
        chat = Chat(http)
        chat.start()
        chat.send("add a task to buy milk")
        _until(lambda: vertex.requests, "the step function calling the model")
        assert "LLMResponseReceived" not in _types(chat)  # the model is still thinking

        cancelled = ok(http.post(f"/v1/threads/{chat.thread_id}/cancel"))
        assert cancelled["cancelled"] is True

        _until(lambda: "LLMResponseReceived" in _types(chat), "the late answer", THINKING + 30)
        time.sleep(2.0)  # the relay and any redelivery have had their chance to act on it
        types = _types(chat)
        after = types[types.index("TurnCancelled") :]
        assert "LLMResponseReceived" in after  # recorded: nothing is lost from the log
        assert "ToolExecutionRequested" not in types  # its call was never run
        assert "LLMCallRequested" not in after  # no step of the cancelled turn started
        assert len(vertex.requests) == 1

        reply = chat.say("what is 2+2?")
        assert "4" in reply
        # The next call's context: the cancelled request with the note, not the late answer.
        contents = vertex.requests[-1].body["contents"]
        said = [p.get("text", "") for c in contents for p in c["parts"]]
        assert "add a task to buy milk" in said
        assert "Adding it." not in said
        assert not any("functionCall" in p for c in contents for p in c["parts"])
        assert any("cancel" in text.lower() for text in said)


def _read_turn(
    stack: LocalStack, user: str, message: str
) -> tuple[str, list[tuple[float, str | None, dict[str, Any]]]]:
    """Start a thread, send `message`, and read its stream until the run finishes."""
    token = stack.dev_token(f"{user}-{uuid.uuid4().hex[:6]}")
    headers = {"Authorization": f"Bearer {token}"}
    arrived: list[tuple[float, str | None, dict[str, Any]]] = []
    with (
        httpx.Client(
            base_url=stack.urls["ingest"], headers=headers, timeout=60, transport=KeepAliveRetry()
        ) as http,
        httpx.Client(base_url=stack.urls["ingest"], headers=headers) as reader_http,
    ):
        chat = Chat(http)
        chat.start()

        def read() -> None:
            for sse_id, data in sse_messages(reader_http, f"/v1/threads/{chat.thread_id}/stream"):
                arrived.append((time.monotonic(), sse_id, data))
                if data["type"] == "RUN_FINISHED":
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        chat.send(message)
        reader.join(60)
    return chat.thread_id, arrived


def test_a_stream_broken_off_midway_ends_its_message_and_the_retry_writes_anew(
    vertex_stack: tuple[LocalStack, FakeVertex],
) -> None:
    from ag_ui.core import Event as AguiEvent
    from pydantic import TypeAdapter
    from tests.projections.test_agui import verify_sequence

    stack, vertex = vertex_stack
    broken = "First try: " + " ".join(f"lost{i}" for i in range(20)) + "."
    whole = "Second try: " + " ".join(f"kept{i}" for i in range(12)) + "."
    vertex.reply(gemini_reply({"text": broken}, model_version=MODEL), pace=0.2, fail_after=4)
    vertex.reply(gemini_reply({"text": whole}, model_version=MODEL), pace=0.1)

    thread, arrived = _read_turn(stack, "broken-stream", "tell me something long")

    events = [TypeAdapter(AguiEvent).validate_python(d) for _, _, d in arrived]
    verify_sequence(events, thread)  # every message ended before the run did
    said: dict[str, str] = {}
    order: list[str] = []
    for _, _, d in arrived:
        if d["type"] == "TEXT_MESSAGE_START" and d["role"] == "assistant":
            order.append(d["messageId"])
            said[d["messageId"]] = ""
        elif d["type"] == "TEXT_MESSAGE_CONTENT" and d["messageId"] in said:
            said[d["messageId"]] += d["delta"]
    first, second = order
    assert second == f"{first}/2"  # the retry's own message
    assert broken.startswith(said[first])
    assert said[first]  # some of the broken attempt went out live...
    assert said[second] == whole  # ...and the retry's text arrived whole, once
    types = [(d["type"], d.get("messageId"), d.get("name")) for _, _, d in arrived]
    assert types.index(("TEXT_MESSAGE_END", first, None)) < types.index(("CUSTOM", None, "retry"))
    retry = next(d for _, _, d in arrived if d.get("name") == "retry")
    assert retry["value"]["message_id"] == first


def test_the_models_streamed_reply_reaches_an_sse_client_piece_by_piece(
    vertex_stack: tuple[LocalStack, FakeVertex],
) -> None:
    stack, vertex = vertex_stack
    text = "Here is a longer answer, " + " ".join(f"word{i}" for i in range(40)) + "."
    vertex.reply(gemini_reply({"text": text}, model_version=MODEL), pace=0.2)
    _, arrived = _read_turn(stack, "stream-model", "tell me something long")

    assert vertex.last.streamed
    said = next(
        d["messageId"]
        for _, _, d in arrived
        if d["type"] == "TEXT_MESSAGE_START" and d["role"] == "assistant"
    )
    mine = [(t, i, d) for t, i, d in arrived if d.get("messageId") == said]
    contents = [(t, i, d) for t, i, d in mine if d["type"] == "TEXT_MESSAGE_CONTENT"]
    live = [(t, i) for t, i, _ in contents if i is not None and "~" in i]
    assert len(live) >= 5, [(round(t, 2), i, d["type"]) for t, i, d in mine]
    ended = next(t for t, _, d in mine if d["type"] == "TEXT_MESSAGE_END")
    assert ended - live[0][0] >= 1.5  # the first words came long before the whole reply
    assert "".join(d["delta"] for _, _, d in contents) == text  # once each, none missing
