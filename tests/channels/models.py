"""Models the channel tests answer with: a set reply, at a set pace."""

from __future__ import annotations

import time

from messagedb_agent.llm.types import LLMConfig, LLMResponse, Message, ToolSpec


class Answering:
    """A model whose every answer is `text`, given after `seconds`."""

    def __init__(self, text: str, seconds: float = 0.0) -> None:
        self.text = text
        self.seconds = seconds

    def call(
        self, messages: list[Message], tools: list[ToolSpec], config: LLMConfig
    ) -> LLMResponse:
        time.sleep(self.seconds)
        return LLMResponse(text=self.text, tool_calls=(), model_name="answering")


SLOW_ANSWER = "Here is the **answer**."
