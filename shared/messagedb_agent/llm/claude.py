"""Claude on Vertex AI through `anthropic.AnthropicVertex` and the Messages API.

`max_retries=0`: the engine records every attempt as an event and owns backoff. With an
`on_text` the reply is streamed (`streamRawPredict`), and a stream that breaks off is a failed
attempt like any other. Consecutive
messages of one role are merged, so tool results (and a user message sent while they were
being produced) form the single user message the API expects after a `tool_use` turn.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import anthropic
from anthropic.types import AssistantMessageParam, MessageParam, ToolParam, Usage, UserMessageParam
from anthropic.types import Message as ClaudeMessage
from google.auth import exceptions as auth_errors

from messagedb_agent.events.values import TokenUsage, ToolCall
from messagedb_agent.llm import errors
from messagedb_agent.llm.types import (
    AssistantTurn,
    LLMConfig,
    LLMResponse,
    Message,
    ToolResult,
    ToolSpec,
    UserTurn,
)

DEFAULT_MAX_TOKENS = 4096
# Claude on Vertex AI reads the API version from the body and accepts only this value; the
# SDK would otherwise fill in its own first-party version, which Vertex does not know.
VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"

_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "max_tokens",
    "model_context_window_exceeded": "max_tokens",
}
# Stop reasons of a reply cut short: at `max_tokens`, or (Sonnet 4.5 and later) at the end of
# the model's context window.
_TRUNCATED = frozenset({"max_tokens", "model_context_window_exceeded"})


class ClaudeModel:
    """An `LLMClient` for `claude-*` models; one instance per process, reused across calls.

    `base_url` is the Vertex endpoint root (as for Gemini); the Messages API lives under /v1.
    """

    def __init__(
        self,
        *,
        project: str,
        location: str,
        base_url: str | None = None,
        credentials: Any = None,
        access_token: str | None = None,
    ) -> None:
        self._client = anthropic.AnthropicVertex(
            project_id=project,
            region=location,
            base_url=f"{base_url.rstrip('/')}/v1" if base_url else None,
            credentials=credentials,
            access_token=access_token,
            max_retries=0,
        )

    def call(
        self, messages: list[Message], tools: list[ToolSpec], config: LLMConfig
    ) -> LLMResponse:
        request: dict[str, Any] = {}
        # `extra_body` is merged before the SDK's `setdefault`, so this version wins.
        extra_body: dict[str, Any] = {"anthropic_version": VERTEX_ANTHROPIC_VERSION}
        if config.system_prompt:
            request["system"] = config.system_prompt
        if config.temperature is not None:
            # This SDK version no longer names sampling parameters; the API still reads them.
            extra_body["temperature"] = config.temperature
        if tools:
            request["tools"] = to_tools(tools)
        request.update(
            model=config.model,
            max_tokens=config.max_output_tokens or DEFAULT_MAX_TOKENS,
            messages=to_messages(messages),
            timeout=config.timeout_seconds,
            extra_body=extra_body,
        )
        try:
            if config.on_text is None:
                response = self._client.messages.create(**request)
            else:
                response = self._streamed(request, config.on_text)
        except anthropic.APIStatusError as error:
            raise errors.from_status(_status_of(error), str(error)) from error
        except anthropic.APITimeoutError as error:
            raise errors.timed_out(str(error)) from error
        except anthropic.APIConnectionError as error:
            raise errors.unavailable(str(error)) from error
        except auth_errors.TransportError as error:
            raise errors.unavailable(f"Google credentials: {error}") from error
        except auth_errors.GoogleAuthError as error:
            raise errors.credentials_failed(str(error), retryable=error.retryable) from error
        return parse_message(response, config)

    def _streamed(self, request: dict[str, Any], on_text: Callable[[str], None]) -> ClaudeMessage:
        """The streamed reply, its text handed to `on_text` piece by piece, as one message.

        The SDK assembles the message from the events; one without a `stop_reason` never got
        its `message_delta`, so the stream broke off and its content is incomplete.
        """
        with self._client.messages.stream(**request) as stream:
            for text in stream.text_stream:
                on_text(text)
            message = stream.get_final_message()
        if message.stop_reason is None:
            raise errors.unavailable("Claude's stream ended before its stop reason")
        return message


# Anthropic's error types and the statuses they stand for (https://docs.anthropic.com/en/api/errors).
# An error in the middle of a stream comes as an `error` event on a 200 response, and its type
# is all that says what happened (https://docs.anthropic.com/en/docs/build-with-claude/streaming).
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def _status_of(error: anthropic.APIStatusError) -> int:
    if error.status_code >= 400:
        return error.status_code
    body = error.body if isinstance(error.body, dict) else {}
    detail = body.get("error")
    kind = detail.get("type") if isinstance(detail, dict) else None
    return _ERROR_STATUS.get(str(kind), 500)


def to_messages(messages: Sequence[Message]) -> list[MessageParam]:
    """The conversation as Messages-API turns, with adjacent turns of one role merged."""
    turns: list[MessageParam] = []
    for message in messages:
        if isinstance(message, AssistantTurn):
            blocks = _assistant_blocks(message)
            if not blocks:
                continue
            if turns and turns[-1]["role"] == "assistant":
                _extend(turns[-1], blocks)
            else:
                turns.append(AssistantMessageParam(role="assistant", content=blocks))
        else:
            block = _user_block(message)
            if turns and turns[-1]["role"] == "user":
                _add_user_block(turns[-1], block)
            else:
                turns.append(UserMessageParam(role="user", content=[block]))
    return turns


def _extend(turn: MessageParam, blocks: list[Any]) -> None:
    content = turn["content"]
    assert isinstance(content, list)
    content.extend(blocks)


def _add_user_block(turn: MessageParam, block: Any) -> None:
    """The API wants a user turn's `tool_result` blocks before its text, so results go first."""
    content = turn["content"]
    assert isinstance(content, list)
    if block["type"] != "tool_result":
        content.append(block)
        return
    first_text = next(
        (i for i, other in enumerate(content) if other["type"] != "tool_result"), len(content)
    )
    content.insert(first_text, block)


def _user_block(message: UserTurn | ToolResult) -> Any:
    if isinstance(message, UserTurn):
        return {"type": "text", "text": message.text}
    return {
        "type": "tool_result",
        "tool_use_id": message.tool_call_id,
        "content": _result_text(message.content),
        "is_error": message.is_error,
    }


def _assistant_blocks(turn: AssistantTurn) -> list[Any]:
    """Empty text blocks are rejected by the API, so a call-only turn has none."""
    blocks: list[Any] = [{"type": "text", "text": turn.text}] if turn.text else []
    blocks.extend(
        {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
        for call in turn.tool_calls
    )
    return blocks


def _result_text(content: Any) -> str:
    return content if isinstance(content, str) else json.dumps(content, default=str)


def to_tools(specs: Sequence[ToolSpec]) -> list[ToolParam]:
    return [
        {"name": spec.name, "description": spec.description, "input_schema": spec.parameters}
        for spec in specs
    ]


def parse_message(message: ClaudeMessage, config: LLMConfig) -> LLMResponse:
    """Text and tool_use blocks in order, or the `LLMError` that says why there are none.

    A refusal is a safety error. A reply cut at `max_tokens` (or at the context window) is
    `truncated`: its last `tool_use` may hold half its input, so no call of it ever runs; a
    cut text answer is kept once the caller accepts one. An `end_turn` with no content, which
    the API documents after tool results, is `empty`.
    """
    stop = message.stop_reason
    if stop == "refusal":
        raise errors.safety_block("Claude declined to answer (stop_reason refusal)")
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in message.content:
        if block.type == "text":
            texts.append(block.text)
        elif block.type == "tool_use":
            arguments = block.input if isinstance(block.input, dict) else {}
            calls.append(ToolCall(id=block.id, name=block.name, arguments=arguments))
    text = "".join(texts)
    usage = _usage(message.usage)
    if stop in _TRUNCATED:
        if not (config.accept_truncated and text and not calls):
            raise errors.truncated(
                f"Claude stopped at {stop} (max_tokens="
                f"{config.max_output_tokens or DEFAULT_MAX_TOKENS}, {usage.output_tokens} "
                "written) before finishing " + ("a tool call" if calls else "its answer")
            )
    elif not text and not calls:
        raise errors.empty_reply(f"Claude returned no text and no tool call (stop_reason {stop})")
    return LLMResponse(
        text=text,
        tool_calls=tuple(calls),
        model_name=message.model,
        token_usage=usage,
        finish_reason=_FINISH_REASONS.get(stop, stop) if stop else None,
    )


def _usage(usage: Usage) -> TokenUsage:
    """`input_tokens` counts only what came after the last cache breakpoint, so the cache
    writes and reads are added back; reads are the discounted part."""
    read = usage.cache_read_input_tokens or 0
    written = usage.cache_creation_input_tokens or 0
    details = usage.output_tokens_details
    return TokenUsage(
        input_tokens=usage.input_tokens + written + read,
        output_tokens=usage.output_tokens,
        cached_input_tokens=read,
        thinking_tokens=details.thinking_tokens if details is not None else 0,
    )
