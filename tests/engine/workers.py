"""Entry points for engine runs in separate processes (spawned, so nothing is shared)."""

from __future__ import annotations

from pathlib import Path

from tests.engine.doubles import EchoTools, step

from messagedb_agent.engine.effects import EngineConfig
from messagedb_agent.engine.step import Engine
from messagedb_agent.llm.types import LLMConfig, LLMResponse, Message, ToolSpec
from messagedb_agent.notification import Notification
from messagedb_agent.store.client import MessageStore


class FileCountingModel:
    """Appends a line to a file per call, so calls can be counted across processes."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def call(
        self, messages: list[Message], tools: list[ToolSpec], config: LLMConfig
    ) -> LLMResponse:
        with self.path.open("a") as handle:
            handle.write("call\n")
        return LLMResponse(text="one answer", tool_calls=(), model_name="counting")


def step_once(
    database_url: str, stream: str, position: int, calls_file: str, start_at: float
) -> str:
    import time

    with MessageStore(database_url, min_size=1, max_size=1) as store:
        engine = Engine(
            store, FileCountingModel(Path(calls_file)), EchoTools(), EngineConfig(model="counting")
        )
        store.stream_version(stream)  # connect before the start line, so all start together
        time.sleep(max(0.0, start_at - time.time()))
        result = step(engine, Notification(stream_name=stream, position=position))
    return result.outcome.value
