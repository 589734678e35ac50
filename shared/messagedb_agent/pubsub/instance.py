"""What a function instance builds once and keeps: settings, the pool, the engine, a publisher.

Everything is made on first use, under a lock (functions-framework serves requests on
threads), so a cold start pays only for what its function needs and a bad configuration
fails the first request with a clear message rather than the import.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from messagedb_agent.config import Settings
from messagedb_agent.engine.step import Engine
from messagedb_agent.notification import NotificationPublisher
from messagedb_agent.pubsub.config import PubSubSettings
from messagedb_agent.pubsub.step_handler import StepDelivery
from messagedb_agent.pubsub.transport import publisher_from_settings
from messagedb_agent.store.client import MessageStore

T = TypeVar("T")


class FunctionInstance:
    def __init__(
        self,
        settings: Callable[[], Settings] = Settings,
        pubsub_settings: Callable[[], PubSubSettings] = PubSubSettings,
    ) -> None:
        self._make_settings = settings
        self._make_pubsub_settings = pubsub_settings
        self._lock = threading.RLock()
        self._made: dict[str, object] = {}

    def _once(self, name: str, make: Callable[[], T]) -> T:
        with self._lock:
            if name not in self._made:
                self._made[name] = make()
            return self._made[name]  # type: ignore[return-value]

    @property
    def settings(self) -> Settings:
        return self._once("settings", self._make_settings)

    @property
    def pubsub_settings(self) -> PubSubSettings:
        return self._once("pubsub_settings", self._make_pubsub_settings)

    @property
    def store(self) -> MessageStore:
        from messagedb_agent.postgres.connect import open_store

        return self._once("store", lambda: open_store(self.settings))

    @property
    def engine(self) -> Engine:
        from messagedb_agent.runtime import build_engine

        return self._once("engine", lambda: build_engine(self.settings, self.store))

    @property
    def publisher(self) -> NotificationPublisher:
        return self._once("publisher", lambda: publisher_from_settings(self.pubsub_settings))

    @property
    def step_delivery(self) -> StepDelivery:
        return self._once(
            "step_delivery",
            lambda: StepDelivery(
                self.engine,
                self.publisher,
                max_steps=self.settings.step_max_steps,
                budget_seconds=self.settings.step_budget_seconds,
            ),
        )

    def close(self) -> None:
        """Close the pool if one was opened (tests, and processes that outlive the function)."""
        with self._lock:
            store = self._made.pop("store", None)
            self._made.pop("engine", None)
            self._made.pop("step_delivery", None)
        if isinstance(store, MessageStore):
            store.close()
