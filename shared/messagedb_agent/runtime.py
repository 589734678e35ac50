"""The composition root: one `Settings` in, what each entry point needs out. Nothing else wires
parts together.

A `Runtime` is what one process keeps: each part is built on first use, once, under a lock
(functions-framework serves requests on threads), so a cold start pays only for what its
function uses: ingest the API, step the engine and its delivery handler, relay the sweep.
Importing this module loads the settings only.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast

from messagedb_agent.settings import Settings

if TYPE_CHECKING:
    from messagedb_agent.api.app import IngestApi
    from messagedb_agent.engine.effects import EngineConfig
    from messagedb_agent.engine.step import Engine
    from messagedb_agent.llm.types import LLMClient
    from messagedb_agent.notification import NotificationPublisher
    from messagedb_agent.pubsub.step_handler import StepDelivery
    from messagedb_agent.relay.run import RelayReport
    from messagedb_agent.store.client import MessageStore
    from messagedb_agent.tools.registry import Tool

log = logging.getLogger(__name__)

T = TypeVar("T")
YOUNG_COLLECTION_THRESHOLD = 10_000  # see Runtime.tune_collector


def build_engine(
    settings: Settings,
    store: MessageStore,
    llm: LLMClient | None = None,
    *,
    tools: Iterable[Tool | Callable[..., Any]] = (),
) -> Engine:
    """The engine with its tools, reply sender and view cache.

    The tools are the built-in ones, those of the modules `TOOL_MODULES` names, `tools` (for
    a program that builds its own engine), then the MCP servers'; a name taken twice, or a
    module that cannot be imported or has no tools, is an error here, at start-up.
    """
    from messagedb_agent.channels import platforms
    from messagedb_agent.channels.callback import HttpReplySender
    from messagedb_agent.channels.replies import RoutedReplies
    from messagedb_agent.engine.cache import ViewCache
    from messagedb_agent.engine.step import Engine
    from messagedb_agent.observability.instrumented import TracedLLM, TracedTools
    from messagedb_agent.tools import default_registry
    from messagedb_agent.tools.executor import RegistryTools

    limits = settings.engine
    registry = default_registry()
    if limits.tool_modules:
        from messagedb_agent.tools.modules import load_tool_modules, module_names

        for declared in load_tool_modules(module_names(limits.tool_modules)):
            registry.register(declared)
    for extra in tools:
        registry.register(extra)
    if limits.mcp_servers:
        from messagedb_agent.settings.agent import servers_from_json
        from messagedb_agent.tools.mcp_client import load_mcp_tools

        # connected once per process; the registry closes the connections with itself
        load_mcp_tools(servers_from_json(limits.mcp_servers), registry)
    offered = RegistryTools(registry, limits.tool_timeout_seconds)
    callbacks = settings.callbacks
    webhooks = HttpReplySender(
        callbacks.callback_signing_secret.get_secret_value(),
        callbacks.delivery_timeout_seconds,
        allow_private=callbacks.callback_allow_private,
    )
    replies = RoutedReplies(webhooks, platforms.senders(settings))
    approval = tuple(t.name for t in registry if t.approval)  # declared with @tool(approval=...)
    config = _engine_config(settings)
    config = replace(
        config,
        tools_requiring_approval=(*config.tools_requiring_approval, *approval),
        idempotent_tools=tuple(t.name for t in registry if t.idempotent),
    )
    return Engine(
        store,
        TracedLLM(llm or _llm_client(settings)),  # a span per model call and per tool call
        TracedTools(offered),
        config,
        replies=replies,
        views=ViewCache(limits.view_cache_events),
    )


def _engine_config(settings: Settings) -> EngineConfig:
    from messagedb_agent.engine.effects import EngineConfig
    from messagedb_agent.llm.catalogue import default_context_budget
    from messagedb_agent.llm.prompts import DEFAULT_SYSTEM_PROMPT
    from messagedb_agent.projections.next_step import Policy

    limits = settings.engine
    return EngineConfig(
        model=settings.effective_model,
        system_prompt=settings.model.system_prompt or DEFAULT_SYSTEM_PROMPT,
        policy=Policy(
            max_iterations=limits.max_iterations,
            max_llm_attempts=limits.max_llm_attempts,
            max_tool_attempts=limits.max_tool_attempts,
            max_delivery_attempts=settings.callbacks.max_delivery_attempts,
        ),
        llm_lease=timedelta(seconds=limits.llm_lease_seconds),
        tool_lease=timedelta(seconds=limits.tool_lease_seconds),
        llm_timeout_seconds=limits.llm_timeout_seconds,
        tool_timeout_seconds=limits.tool_timeout_seconds,
        unavailable_retry=timedelta(seconds=limits.model_unavailable_retry_seconds),
        max_output_tokens=limits.max_output_tokens,
        max_output_tokens_ceiling=limits.max_output_tokens_ceiling,
        context_budget=limits.context_budget_tokens
        or default_context_budget(settings.effective_model),
        tool_result_max_chars=limits.tool_result_max_chars,
        tools_requiring_approval=limits.approval_patterns,
        approval_ttl=timedelta(seconds=limits.tool_approval_ttl_seconds)
        if limits.tool_approval_ttl_seconds
        else None,
        busy_notice_after=timedelta(seconds=settings.callbacks.busy_notice_seconds)
        if settings.callbacks.busy_notice_seconds
        else None,
    )


def _llm_client(settings: Settings) -> LLMClient:
    from messagedb_agent.llm.factory import create_client

    return create_client(
        settings.effective_model,
        project=settings.google_cloud_project,
        location=settings.model.google_cloud_location,
        base_url=settings.model.vertex_api_endpoint,
        offline_word_delay=settings.model.offline_word_delay_ms / 1000,
    )


@dataclass(frozen=True, slots=True)
class RelayOutcome:
    """One relay run, whatever carries it: its report, or why it could not run (the database
    or Pub/Sub unavailable; the next run picks up from the same position)."""

    report: RelayReport | None = None
    unavailable: str | None = None

    @property
    def ok(self) -> bool:
        return self.report is not None

    def as_json(self) -> dict[str, Any]:
        if self.report is None:
            return {"error": "unavailable", "detail": self.unavailable}
        return dict(self.report.as_json())


class Runtime:
    """One process's parts, built from its settings on first use and kept; thread-safe."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.RLock()  # re-entrant: a part may need another one built first
        self._made: dict[str, object] = {}

    def _once(self, name: str, make: Callable[[], T]) -> T:
        with self._lock:
            if name not in self._made:
                self._made[name] = make()
            return cast(T, self._made[name])

    @property
    def store(self) -> MessageStore:
        from messagedb_agent.postgres.connect import open_store  # psycopg: first use only

        return self._once("store", lambda: open_store(self.settings))

    @property
    def publisher(self) -> NotificationPublisher:
        from messagedb_agent.pubsub.transport import publisher_from_settings

        return self._once("publisher", lambda: publisher_from_settings(self.settings))

    @property
    def engine(self) -> Engine:
        return self._once("engine", lambda: build_engine(self.settings, self.store))

    def import_tool_modules(self) -> None:
        """Import the modules `TOOL_MODULES` names, now: a module that fails while importing or
        defines no tools stops the process at cold start, naming it, instead of failing every
        delivery later. Python keeps the modules, so the engine's own load is then free."""
        names = self.settings.engine.tool_modules
        if names:
            from messagedb_agent.tools.modules import load_tool_modules, module_names

            load_tool_modules(module_names(names))

    @staticmethod
    def tune_collector() -> None:
        """Fit CPython's garbage collector to a process that folds events, once its cold start
        is done. What the cold start built (modules, schemas, clients: most of the process's
        objects) is frozen, so no later collection walks it again (`gc.freeze`). The youngest
        generation is collected every 10,000 net allocations instead of 700: a step allocates
        thousands of short-lived, acyclic objects (rows, events, messages), and at the default
        a turn on a long thread ran dozens of collections that freed nothing while walking the
        views being built (`bench/step.py` measures it)."""
        gc.collect()
        gc.freeze()
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, older, oldest)

    @property
    def ingest_api(self) -> IngestApi:
        """The HTTP API; its store and publisher are this runtime's, made when a request
        first needs them."""
        from messagedb_agent.api.app import create_api

        return self._once(
            "ingest_api",
            lambda: create_api(lambda: self.store, lambda: self.publisher, self.settings),
        )

    @property
    def step_delivery(self) -> StepDelivery:
        from messagedb_agent.pubsub.step_handler import StepDelivery

        limits = self.settings.engine
        return self._once(
            "step_delivery",
            lambda: StepDelivery(
                self.engine,
                self.publisher,
                max_steps=limits.step_max_steps,
                budget_seconds=limits.step_budget_seconds,
            ),
        )

    def relay(self, now: datetime | None = None) -> RelayOutcome:
        """Sweep every thread category, publish what needs a step and record the positions,
        until caught up or the budget is spent; for RELAY_LOOP_SECONDS, again every tick.
        Given `now`, one pass at that time."""
        from messagedb_agent.pubsub.publisher import PublishError
        from messagedb_agent.relay.run import relay
        from messagedb_agent.store.errors import StoreUnavailableError

        try:
            report = relay(self.store, self.publisher, self.settings, now)
        except (StoreUnavailableError, PublishError, ConnectionError, TimeoutError) as exc:
            log.warning("relay run failed; the next run picks up from the same position: %s", exc)
            return RelayOutcome(unavailable=str(exc))
        return RelayOutcome(report)

    def close(self) -> None:
        """Close the pool if one was opened, and drop what used it (tests, and processes that
        outlive their entry point)."""
        with self._lock:
            store = self._made.pop("store", None)
            for name in ("engine", "step_delivery", "ingest_api"):
                self._made.pop(name, None)
        if store is not None:
            cast("MessageStore", store).close()
