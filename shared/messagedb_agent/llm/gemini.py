"""Gemini on Vertex AI through the `google.genai` SDK.

The SDK's own retries are off: the engine records every attempt as an event and owns backoff.
For the same reason a stream is not resumed by the SDK (`automatic_continuation`): a stream
that breaks off is a failed attempt, recorded, and asked again whole. Tool results travel as
`functionResponse` parts, whose `response` must be a JSON object.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from google import genai
from google.auth import exceptions as auth_errors
from google.genai import errors as genai_errors
from google.genai import types

from messagedb_agent.events.values import TokenUsage, ToolCall
from messagedb_agent.llm import errors
from messagedb_agent.llm.types import (
    AssistantTurn,
    LLMConfig,
    LLMResponse,
    Message,
    ToolResult,
    ToolSpec,
)

# Google's documented placeholder for function calls replayed without their thought signature;
# the SDK base64-encodes bytes, so the bytes are the decoding of the literal string.
_SKIP_SIGNATURE = base64.urlsafe_b64decode("skip_thought_signature_validator")
# Models before Gemini 3 neither need nor expect a signature on replayed calls.
_UNSIGNED_MODELS = re.compile(r"^gemini-[12](?:[.-]|$)")

# Finish reasons that mean the answer was withheld; Vertex adds MODEL_ARMOR (a Model Armor
# template screened the response), which this SDK version does not list but passes through.
_SAFETY_FINISH = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "MODEL_ARMOR",
    }
)
_RETRYABLE_FINISH = frozenset({"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL"})


def generated_call_id(index: int, name: str) -> str:
    """The id given to a call Gemini returned without one: stable, so replays match."""
    return f"call_{index}_{name}"


def _wire_id(call_id: str, name: str) -> str | None:
    """Ids made up by `generated_call_id` are not sent back: Gemini never issued them."""
    return None if re.fullmatch(rf"call_\d+_{re.escape(name)}", call_id) else call_id


class GeminiModel:
    """An `LLMClient` for `gemini-*` models; one instance per process, reused across calls."""

    def __init__(
        self,
        *,
        project: str,
        location: str,
        base_url: str | None = None,
        credentials: Any = None,
    ) -> None:
        http_options = types.HttpOptions(base_url=base_url) if base_url else None
        self._client = genai.Client(
            vertexai=True,
            project=project,
            location=location,
            credentials=credentials,
            http_options=http_options,
        )

    def call(
        self, messages: list[Message], tools: list[ToolSpec], config: LLMConfig
    ) -> LLMResponse:
        request = types.GenerateContentConfig(
            system_instruction=config.system_prompt,
            temperature=config.temperature,
            max_output_tokens=config.max_output_tokens,
            tools=[_tool(tools)] if tools else None,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
            http_options=types.HttpOptions(
                timeout=max(1, round(config.timeout_seconds * 1000)),
                retry_options=types.HttpRetryOptions(attempts=1),
            ),
        )
        contents = to_contents(messages, signed=not _UNSIGNED_MODELS.match(config.model))
        try:
            if config.on_text is None:
                response = self._client.models.generate_content(
                    model=config.model, contents=contents, config=request
                )
            else:
                # `streamGenerateContent?alt=sse`: the text reaches `on_text` as it is made.
                request.automatic_continuation = False
                chunks = self._client.models.generate_content_stream(
                    model=config.model, contents=contents, config=request
                )
                response = gather_stream(chunks, config.on_text)
        except genai_errors.APIError as error:
            raise errors.from_status(error.code, _api_message(error)) from error
        except auth_errors.TransportError as error:
            raise errors.unavailable(f"Google credentials: {error}") from error
        except auth_errors.GoogleAuthError as error:
            raise errors.credentials_failed(str(error), retryable=error.retryable) from error
        except Exception as error:
            classified = errors.from_transport(error)
            if classified is None:
                raise
            raise classified from error
        return parse_response(response, config)


def gather_stream(
    chunks: Iterable[types.GenerateContentResponse], on_text: Callable[[str], None]
) -> types.GenerateContentResponse:
    """The streamed chunks as the one response `generateContent` would have given.

    Parts are kept in order (text pieces joined by `parse_response` as usual); the finish
    reason, its message and the prompt feedback come from the chunk that has them; usage is
    a running total, so the last report wins. A stream that ends with no finish reason broke
    off: its text is incomplete, so the attempt fails and is asked again.
    """
    parts: list[types.Part] = []
    last: types.GenerateContentResponse | None = None
    finish: types.Candidate | None = None
    feedback, usage, version = None, None, None
    for chunk in chunks:
        last = chunk
        feedback = chunk.prompt_feedback or feedback
        usage = chunk.usage_metadata or usage
        version = chunk.model_version or version
        if not chunk.candidates:
            continue
        candidate = chunk.candidates[0]
        for part in (candidate.content.parts or []) if candidate.content else []:
            parts.append(part)
            if part.text and not part.thought:
                on_text(part.text)
        if candidate.finish_reason is not None:
            finish = candidate
    if last is None:
        raise errors.unavailable("Gemini's stream ended before its first chunk")
    if finish is None and feedback is None:
        raise errors.unavailable("Gemini's stream ended before a finish reason")
    candidates = []
    if finish is not None:
        content = types.Content(role="model", parts=parts)
        candidates.append(finish.model_copy(update={"content": content}))
    return types.GenerateContentResponse(
        candidates=candidates,
        prompt_feedback=feedback,
        usage_metadata=usage,
        model_version=version,
    )


def to_contents(messages: Sequence[Message], *, signed: bool = False) -> list[types.Content]:
    """The conversation as Gemini contents, adjacent messages of one role in one content.

    Tool results and a user message that follows them therefore travel as one user content,
    its function responses first, as the API wants after a function-call turn.
    """
    contents: list[types.Content] = []
    for message in messages:
        if isinstance(message, AssistantTurn):
            role, parts = "model", _model_parts(message, signed=signed)
        elif isinstance(message, ToolResult):
            role, parts = "user", [_function_response(message)]
        else:
            role, parts = "user", [types.Part(text=message.text)]
        if not parts:
            continue
        if contents and contents[-1].role == role:
            _merge(contents[-1], parts)
        else:
            contents.append(types.Content(role=role, parts=parts))
    return contents


def _merge(content: types.Content, parts: list[types.Part]) -> None:
    merged = list(content.parts or [])
    for part in parts:
        if part.function_response is None:
            merged.append(part)
            continue
        first_other = next(
            (i for i, other in enumerate(merged) if other.function_response is None), len(merged)
        )
        merged.insert(first_other, part)
    content.parts = merged


def _model_parts(turn: AssistantTurn, *, signed: bool) -> list[types.Part]:
    """Calls carry the signature they came with; without any, the first gets the placeholder."""
    parts = [types.Part(text=turn.text)] if turn.text else []
    for index, call in enumerate(turn.tool_calls):
        kept = turn.thought_signatures.get(call.id)
        if kept is not None:
            signature: bytes | None = base64.b64decode(kept)
        elif signed and index == 0 and not turn.thought_signatures:
            # Only the first call of a parallel batch carries a signature.
            signature = _SKIP_SIGNATURE
        else:
            signature = None
        parts.append(
            types.Part(
                function_call=types.FunctionCall(
                    id=_wire_id(call.id, call.name), name=call.name, args=call.arguments
                ),
                thought_signature=signature,
            )
        )
    return parts


def _function_response(result: ToolResult) -> types.Part:
    return types.Part(
        function_response=types.FunctionResponse(
            id=_wire_id(result.tool_call_id, result.name),
            name=result.name,
            response=response_object(result),
        )
    )


def response_object(result: ToolResult) -> dict[str, Any]:
    """Gemini wants a JSON object: errors under "error", any other non-object under "result"."""
    content = result.content
    if result.is_error:
        if isinstance(content, dict) and "error" in content:
            return content
        return {"error": content}
    if isinstance(content, dict):
        return content
    return {"result": content}


def _tool(specs: Sequence[ToolSpec]) -> types.Tool:
    return types.Tool(
        function_declarations=[
            types.FunctionDeclaration(
                name=spec.name,
                description=spec.description,
                parameters_json_schema=spec.parameters,
            )
            for spec in specs
        ]
    )


def parse_response(response: types.GenerateContentResponse, config: LLMConfig) -> LLMResponse:
    """Text and calls of the first candidate, or the `LLMError` that says why there are none.

    A blocked prompt or answer is a safety error; a reply cut at the output limit is
    `truncated` (its calls may be half-written, so they never run), except that a cut text
    answer is kept once the caller accepts one; a reply with neither text nor calls is `empty`.
    """
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        reason = _enum_name(feedback.block_reason)
        detail = feedback.block_reason_message or "the prompt was blocked"
        raise errors.safety_block(f"Gemini blocked the prompt ({reason}): {detail}")
    if not response.candidates:
        raise errors.bad_response("Gemini returned no candidates")
    candidate = response.candidates[0]
    finish = _enum_name(candidate.finish_reason) if candidate.finish_reason else None
    if finish in _SAFETY_FINISH:
        detail = candidate.finish_message or "the response was blocked"
        raise errors.safety_block(f"Gemini stopped the response ({finish}): {detail}")
    if finish in _RETRYABLE_FINISH:
        raise errors.bad_response(
            f"Gemini stopped the response ({finish}): {candidate.finish_message or ''}".rstrip()
        )
    parts = list(candidate.content.parts or []) if candidate.content else []
    text = "".join(part.text for part in parts if part.text and not part.thought)
    signed_calls = list(_tool_calls(parts))
    tool_calls = tuple(call for call, _ in signed_calls)
    usage = _usage(response.usage_metadata)
    if finish == "MAX_TOKENS":
        if not (config.accept_truncated and text and not tool_calls):
            raise errors.truncated(
                f"Gemini reached the output limit ({_limit(config)}, {usage.output_tokens} "
                f"tokens written, {usage.thinking_tokens} of them thinking) before finishing "
                + ("a function call" if tool_calls else "its answer")
            )
    elif not text and not tool_calls:
        raise errors.empty_reply(f"Gemini returned neither text nor a call (finish {finish})")
    return LLMResponse(
        text=text,
        tool_calls=tool_calls,
        model_name=response.model_version or config.model,
        token_usage=usage,
        finish_reason=_finish_reason(finish, has_calls=bool(tool_calls)),
        thought_signatures={
            call.id: base64.b64encode(signature).decode()
            for call, signature in signed_calls
            if signature
        },
    )


def _tool_calls(parts: Sequence[types.Part]) -> Iterator[tuple[ToolCall, bytes | None]]:
    """Each call with the thought signature on its part, which must go back with it."""
    calls = [part for part in parts if part.function_call is not None]
    for index, part in enumerate(calls):
        call = part.function_call
        assert call is not None
        name = call.name or "unnamed"
        tool_call = ToolCall(
            id=call.id or generated_call_id(index, name),
            name=name,
            arguments=dict(call.args or {}),
        )
        yield tool_call, part.thought_signature


def _usage(usage: types.GenerateContentResponseUsageMetadata | None) -> TokenUsage:
    """`promptTokenCount` already includes the cached part; thinking is billed as output, so
    it is added to the candidates' count and also reported on its own."""
    if usage is None:
        return TokenUsage()
    thinking = usage.thoughts_token_count or 0
    return TokenUsage(
        input_tokens=usage.prompt_token_count or 0,
        output_tokens=(usage.candidates_token_count or 0) + thinking,
        cached_input_tokens=usage.cached_content_token_count or 0,
        thinking_tokens=thinking,
    )


def _limit(config: LLMConfig) -> str:
    if config.max_output_tokens is None:
        return "the model's default"
    return f"max_output_tokens={config.max_output_tokens}"


def _finish_reason(finish: str | None, *, has_calls: bool) -> str | None:
    """Gemini ends a function-call turn with STOP; only that turn is called "tool_calls"."""
    if finish == "MAX_TOKENS":
        return "max_tokens"
    if has_calls and finish in ("STOP", None):
        return "tool_calls"
    if finish == "STOP":
        return "stop"
    return finish.lower() if finish else None


def _enum_name(value: Any) -> str:
    return str(getattr(value, "value", value))


def _api_message(error: genai_errors.APIError) -> str:
    """The API's own message, with its status name, falling back to the raw details."""
    message = error.message or json.dumps(error.details, default=str)
    return f"{error.code} {error.status}: {message}" if error.status else f"{error.code}: {message}"
