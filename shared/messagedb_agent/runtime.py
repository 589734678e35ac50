"""The composition root: settings in, a ready engine out. Nothing else wires parts together."""

from __future__ import annotations

from datetime import timedelta

from messagedb_agent.channels.callback import HttpReplySender
from messagedb_agent.config import Settings
from messagedb_agent.engine.cache import ViewCache
from messagedb_agent.engine.effects import EngineConfig
from messagedb_agent.engine.step import Engine
from messagedb_agent.llm.prompts import DEFAULT_SYSTEM_PROMPT
from messagedb_agent.llm.types import LLMClient
from messagedb_agent.projections.next_step import Policy
from messagedb_agent.store.client import MessageStore
from messagedb_agent.tools.executor import RegistryTools


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(
        model=settings.effective_model,
        system_prompt=settings.system_prompt or DEFAULT_SYSTEM_PROMPT,
        policy=Policy(
            max_iterations=settings.max_iterations,
            max_llm_attempts=settings.max_llm_attempts,
            max_tool_attempts=settings.max_tool_attempts,
            max_delivery_attempts=settings.max_delivery_attempts,
        ),
        llm_lease=timedelta(seconds=settings.llm_lease_seconds),
        tool_lease=timedelta(seconds=settings.tool_lease_seconds),
        llm_timeout_seconds=settings.llm_timeout_seconds,
        tool_timeout_seconds=settings.tool_timeout_seconds,
    )


def llm_client(settings: Settings) -> LLMClient:
    from messagedb_agent.llm.factory import create_client

    return create_client(
        settings.effective_model,
        project=settings.google_cloud_project,
        location=settings.google_cloud_location,
        base_url=settings.vertex_api_endpoint,
    )


def build_engine(settings: Settings, store: MessageStore, llm: LLMClient | None = None) -> Engine:
    from messagedb_agent.observability.instrumented import TracedLLM, TracedTools
    from messagedb_agent.tools import default_registry

    registry = default_registry()
    if settings.mcp_servers:
        from messagedb_agent.tools.mcp_client import load_mcp_tools, servers_from_json

        # connected once per process; the registry closes the connections with itself
        load_mcp_tools(servers_from_json(settings.mcp_servers), registry)
    tools = RegistryTools(registry, settings.tool_timeout_seconds)
    replies = HttpReplySender(
        settings.callback_signing_secret.get_secret_value(), settings.delivery_timeout_seconds
    )
    return Engine(
        store,
        TracedLLM(llm or llm_client(settings)),  # a span per model call and per tool call
        TracedTools(tools),
        engine_config(settings),
        replies=replies,
        views=ViewCache(settings.view_cache_events),
    )
