"""The composition root: settings become an engine with the right collaborators."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from messagedb_agent.config import Settings
from messagedb_agent.engine.runner import run_until_idle
from messagedb_agent.events import ToolCall
from messagedb_agent.llm.types import LLMConfig, LLMResponse, Message, ToolResult, ToolSpec
from messagedb_agent.runtime import build_engine
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
