"""The composition root: settings become an engine with the right collaborators, and each
function's parts are built once per process, on first use."""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import ValidationError
from tests.imports import loaded_by

from messagedb_agent.engine.runner import run_until_idle
from messagedb_agent.events import ToolCall
from messagedb_agent.llm.types import LLMConfig, LLMResponse, Message, ToolResult, ToolSpec
from messagedb_agent.runtime import Runtime, build_engine
from messagedb_agent.settings import Settings
from messagedb_agent.stack.processes import free_port
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.commands import start_thread
from messagedb_agent.threads.reading import read_thread

FOREIGN = Path(__file__).parent / "tools" / "foreign_mcp_server.py"


class PingModel:
    """Calls the MCP server's tool once, then repeats what it answered."""

    def call(
        self, messages: list[Message], tools: list[ToolSpec], config: LLMConfig
    ) -> LLMResponse:
        results = [m for m in messages if isinstance(m, ToolResult)]
        if results:
            return LLMResponse(
                text=f"the server said {results[-1].content}", tool_calls=(), model_name="t"
            )
        call = ToolCall(id="p", name="mail__ping", arguments={"loud": True})
        return LLMResponse(text="", tool_calls=(call,), model_name="t")


def test_tools_from_mcp_servers_named_in_config_reach_the_model(
    store: MessageStore, database_url: str
) -> None:
    servers = json.dumps([{"name": "mail", "command": [sys.executable, str(FOREIGN)]}])
    settings = Settings(database_url=database_url, mcp_servers=servers)
    engine = build_engine(settings, store, llm=PingModel())
    try:
        names = {spec.name for spec in engine.tools.specs()}
        assert {"mail__ping", "add_task", "calculate"} <= names
        thread = start_thread(store, owner="ada", message="ping", now=engine.clock())
        run_until_idle(engine, thread.notification, chain=20)
        last = read_thread(store, thread.stream_name)[-1].event
        assert last.response_text == "the server said PONG"  # type: ignore[attr-defined]
    finally:
        engine.tools.registry.close()  # type: ignore[attr-defined]


def test_a_malformed_mcp_server_list_is_a_clear_configuration_error() -> None:
    with pytest.raises(ValidationError, match="MCP_SERVERS is not a valid server list"):
        Settings(mcp_servers='[{"name": "x"}]')


def test_the_engine_keeps_a_view_cache_for_warm_instances(
    store: MessageStore, database_url: str
) -> None:
    engine = build_engine(Settings(database_url=database_url, view_cache_events=123), store)
    assert engine.views is not None
    assert engine.views.max_events == 123


def test_each_part_is_built_once_on_first_use_whichever_thread_asks(
    store: MessageStore, database_url: str
) -> None:
    runtime = Runtime(Settings(database_url=database_url, db_pool_max_size=1))
    try:
        with ThreadPoolExecutor(8) as pool:
            apis = set(map(id, pool.map(lambda _: runtime.ingest_api, range(16))))
            stores = set(map(id, pool.map(lambda _: runtime.store, range(16))))
        assert len(apis) == len(stores) == 1
        assert runtime.engine.store is runtime.store
    finally:
        runtime.close()


def test_a_relay_run_without_its_database_is_an_unavailable_outcome() -> None:
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/x"
    runtime = Runtime(Settings(database_url=closed, db_connect_timeout=1))
    try:
        outcome = runtime.relay()
    finally:
        runtime.close()
    assert not outcome.ok
    assert outcome.as_json()["error"] == "unavailable"


def test_importing_the_runtime_loads_only_the_settings() -> None:
    """A function's cold start pays for the parts it uses when it first uses them."""
    modules = loaded_by("messagedb_agent.runtime", "messagedb_agent", "psycopg")
    assert "messagedb_agent.runtime" in modules
    assert all(
        m in ("messagedb_agent", "messagedb_agent.runtime")
        or m.startswith("messagedb_agent.settings")
        for m in modules
    )


def test_the_step_and_the_relay_recover_by_themselves_when_the_database_comes_back(
    database_url: str,
) -> None:
    """Through an outage a step delivery asks Pub/Sub to redeliver and a relay run fails; the
    same warm parts (their pool, their engine) work again once the database is back."""
    from datetime import UTC, datetime

    from tests.publishers import RecordingPublisher
    from tests.tcp_proxy import CuttableProxy

    from messagedb_agent.pubsub.step_handler import StepDelivery
    from messagedb_agent.relay.run import relay_once
    from messagedb_agent.store.errors import StoreUnavailableError

    proxy = CuttableProxy(database_url)
    settings = Settings(model_name="offline")
    store = MessageStore(proxy.url, min_size=1, max_size=3, timeout=10, wait_timeout=1.0).open()
    publisher = RecordingPublisher()
    delivery = StepDelivery(build_engine(settings, store), publisher)
    try:
        appended = start_thread(store, owner="ada", message="hello", now=datetime.now(UTC))
        proxy.cut()
        with pytest.raises(StoreUnavailableError):
            delivery.handle(appended.notification)  # raised: the push is redelivered
        with pytest.raises(StoreUnavailableError):
            relay_once(store, publisher, datetime.now(UTC))
        proxy.restore()
        deadline = time.monotonic() + 20
        while True:
            try:
                result = delivery.handle(appended.notification)
                break
            except StoreUnavailableError:
                assert time.monotonic() < deadline, "the step did not recover within 20 s"
                time.sleep(0.2)
        assert result.steps >= 1
        assert any(
            e.type == "LLMResponseReceived" for e in read_thread(store, appended.stream_name)
        )
        assert relay_once(store, publisher, datetime.now(UTC)).batches >= 1
    finally:
        store.close()
        proxy.close()
