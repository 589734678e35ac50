"""A local HTTP server speaking the Vertex AI REST routes the providers use.

It serves Gemini's `generateContent` and `streamGenerateContent` and Claude's `rawPredict` and
`streamRawPredict` on 127.0.0.1, records every request (path, query, headers, JSON body) so
tests can assert on what the real SDKs put on the wire, and answers from a queue of scripted
replies, which may be errors, slow, paced piece by piece, or broken off in mid-stream. A
streamed answer is the scripted reply cut the way the service cuts it (`vertex_streams`).

It is as strict as the real service about the request rules it knows: a request that breaks
one (no or a wrong bearer token when tokens are checked, a model it does not serve, a body
against the API's rules, a prompt larger than the model's context window) is answered with
the service's own error and consumes no scripted reply, so a client that passes here does not
merely pass because nothing looked. The helpers at the end build replies in the shapes the
services document, including the awkward ones: cut at the output limit, empty, blocked.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import re
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from tests.llm import vertex_streams
from tests.local_service import LocalService

GEMINI_ROUTE = re.compile(
    r"^/v1beta1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/publishers/google/models/(?P<model>[^/:]+):(?P<method>generateContent|streamGenerateContent)$"
)
CLAUDE_ROUTE = re.compile(
    r"^/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/publishers/anthropic/models/(?P<model>[^/:]+):(?P<method>rawPredict|streamRawPredict)$"
)

# The placeholder Google documents for function calls whose signature was never issued
# (https://ai.google.dev/gemini-api/docs/thought-signatures), as it travels on the wire.
SKIP_SIGNATURE = "skip_thought_signature_validator"
# Models that issue and validate thought signatures on function calls: Gemini 3 and later
# (same page).
_SIGNING_MODEL = re.compile(r"^gemini-(?:[3-9]|[1-9]\d)")

# Anthropic, "Claude on Vertex AI" (https://docs.anthropic.com/en/api/claude-on-vertex-ai) and
# Google, "Use Claude" (https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude/use-claude):
# the version travels in the body and must be this value.
VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"


@dataclass(frozen=True)
class ServedModel:
    context_window: int
    max_output_tokens: int


# The model ids this stand-in serves, with their documented input window and output ceiling,
# as the catalogue (messagedb_agent.llm.catalogue) read them from each model's page: Gemini
# under https://docs.cloud.google.com/gemini-enterprise-agent-platform/models (formerly
# https://cloud.google.com/vertex-ai/generative-ai/docs/models), Claude under
# https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude and
# https://platform.claude.com/docs/en/about-claude/models/overview. Vertex names Claude models
# up to 4.5 with an `@date` version (https://docs.anthropic.com/en/api/claude-on-vertex-ai),
# later ones by their bare id. Shut-down models are left out (Vertex answers them with a 404;
# gemini-3-pro-preview, for one, shut down on 2026-03-09 per
# https://ai.google.dev/gemini-api/docs/deprecations), except Gemini 2.5, retired on
# 2026-10-20, which stays so the clients' handling of models before Gemini 3 (no thought
# signatures) is still exercised.
SERVED_MODELS: dict[str, ServedModel] = {
    "gemini-3.8-flash": ServedModel(1_048_576, 65_536),
    "gemini-4-argon": ServedModel(1_048_576, 1_048_576),
    "gemini-3.5-flash": ServedModel(1_048_576, 65_536),
    "gemini-3.5-flash-lite": ServedModel(1_048_576, 65_536),
    "gemini-3.1-flash-lite": ServedModel(1_048_576, 65_536),
    "gemini-3.1-pro-preview": ServedModel(1_048_576, 65_536),
    "gemini-3-flash-preview": ServedModel(1_048_576, 65_536),
    "gemini-2.5-flash": ServedModel(1_048_576, 65_535),
    "gemini-2.5-flash-lite": ServedModel(1_048_576, 65_535),
    "gemini-2.5-pro": ServedModel(1_048_576, 65_535),
    "claude-sonnet-5-5": ServedModel(1_000_000, 128_000),
    "claude-haiku-5-5": ServedModel(1_000_000, 128_000),
    "claude-opus-5-5": ServedModel(1_000_000, 128_000),
    "claude-sonnet-4-6": ServedModel(1_000_000, 128_000),
    "claude-sonnet-4-5@20250929": ServedModel(200_000, 64_000),
    "claude-haiku-4-5@20251001": ServedModel(200_000, 64_000),
    "claude-opus-4-5@20251101": ServedModel(200_000, 64_000),
    "claude-opus-4-1@20250805": ServedModel(200_000, 32_000),
    "claude-sonnet-4@20250514": ServedModel(200_000, 64_000),
}
# The stand-in's token estimate: about four characters of request JSON per token.
CHARS_PER_TOKEN = 4

_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

# Google's messages for the errors of "Generative AI on Vertex AI inference API errors"
# (https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/api-errors), as the
# service words them. 429 is documented as a quota over its limit or shared capacity used up,
# with the advice to retry after a few seconds, whatever the cause.
RESOURCE_EXHAUSTED_MESSAGE = (
    "Resource exhausted. Please try again later. Please refer to "
    "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details."
)
QUOTA_EXCEEDED_MESSAGE = (
    "Quota exceeded for aiplatform.googleapis.com/generate_content_requests_per_minute_per_"
    "project_per_base_model with base model: {model}. Please submit a quota increase request. "
    "https://cloud.google.com/vertex-ai/docs/generative-ai/quotas-genai."
)
UNAVAILABLE_MESSAGE = "The service is currently unavailable."
UNAUTHENTICATED_MESSAGE = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)


@dataclass(frozen=True)
class Recorded:
    api: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]
    query: dict[str, str] = field(default_factory=dict)

    @property
    def streamed(self) -> bool:
        return self.params.get("method") in ("streamGenerateContent", "streamRawPredict")


@dataclass(frozen=True)
class Reply:
    """`delay` comes before the answer; `pace` between the pieces of a streamed one. After
    `fail_after` pieces an error event breaks the stream off (the service's mid-stream error);
    after `cut_after` pieces the connection just closes (a dropped stream)."""

    status: int
    body: dict[str, Any]
    delay: float = 0.0
    pace: float = 0.0
    fail_after: int | None = None
    cut_after: int | None = None
    failure: dict[str, Any] | None = None  # the mid-stream error's body, else the usual one


@dataclass
class FakeVertex(LocalService):
    """Start with `start()`, script with `reply(...)`, read `requests` afterwards.

    `context_window`, when set, replaces every model's window (tests use a small one);
    `authorize`, when set, must accept the bearer token of every request.
    """

    requests: list[Recorded] = field(default_factory=list)
    # Thought signatures this server put on Gemini 3 function calls, by call name and arguments.
    issued_signatures: dict[str, str] = field(default_factory=dict)
    served_models: dict[str, ServedModel] = field(default_factory=lambda: dict(SERVED_MODELS))
    context_window: int | None = None
    authorize: Callable[[str], bool] | None = None
    _replies: deque[Reply] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    thread_name: ClassVar[str] = "fake-vertex"

    def reply(
        self,
        body: dict[str, Any],
        *,
        status: int = 200,
        delay: float = 0.0,
        pace: float = 0.0,
        fail_after: int | None = None,
        cut_after: int | None = None,
        failure: dict[str, Any] | None = None,
    ) -> None:
        with self._lock:
            reply = Reply(status, body, delay, pace, fail_after, cut_after, failure)
            self._replies.append(reply)

    def error(self, status: int, message: str, *, delay: float = 0.0) -> None:
        """An error in Google's API format, which Vertex uses for both publishers."""
        self.reply(google_error(status, message), status=status, delay=delay)

    def resource_exhausted(self, message: str = RESOURCE_EXHAUSTED_MESSAGE) -> None:
        self.error(429, message)

    def unavailable(self) -> None:
        self.error(503, UNAVAILABLE_MESSAGE)

    def anthropic_error(self, status: int, error_type: str, message: str) -> None:
        """An error Claude's own service raised, which Vertex passes through in Anthropic's
        format (https://docs.anthropic.com/en/api/errors)."""
        self.reply(anthropic_error(error_type, message), status=status)

    def forget(self) -> None:
        """Drop the scripted replies not served yet and the requests recorded so far."""
        with self._lock:
            self._replies.clear()
            self.requests.clear()

    @property
    def last(self) -> Recorded:
        assert self.requests, "the server received no request"
        return self.requests[-1]

    @property
    def pending(self) -> int:
        """Scripted replies not served yet."""
        with self._lock:
            return len(self._replies)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else {}
        path, _, query_string = handler.path.partition("?")
        query = dict(urllib.parse.parse_qsl(query_string))
        api, match = "gemini", GEMINI_ROUTE.match(path)
        if match is None:
            api, match = "claude", CLAUDE_ROUTE.match(path)
        if match is None:
            self._send(handler, Reply(404, google_error(404, f"no route {path}")))
            return
        params = match.groupdict()
        headers = dict(handler.headers.items())
        with self._lock:
            self.requests.append(Recorded(api, path, params, headers, body, query))
            reply = self._rejection(api, params, headers, body)
            if reply is None and self._replies:
                reply = self._replies.popleft()
                if api == "gemini" and _SIGNING_MODEL.match(params["model"]):
                    reply = self._signed(reply)
        if reply is None:
            reply = Reply(500, google_error(500, "no reply scripted"))
        if reply.status == 200 and _streams(api, params, body):
            self._send_stream(handler, api, reply, sse=query.get("alt") == "sse")
        else:
            self._send(handler, reply)

    def _rejection(
        self, api: str, params: dict[str, str], headers: dict[str, str], body: dict[str, Any]
    ) -> Reply | None:
        """The service's answer to a request it refuses before any model runs, if it does."""
        # API errors page (https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/api-errors):
        # 401 UNAUTHENTICATED when the OAuth token is missing, invalid or expired. Vertex
        # checks it before the publisher sees the request, so Claude gets Google's body too.
        if self.authorize is not None:
            scheme, _, token = (_header(headers, "Authorization") or "").partition(" ")
            if scheme != "Bearer" or not token or not self.authorize(token):
                return Reply(401, google_error(401, UNAUTHENTICATED_MESSAGE))
        model = params["model"]
        served = self.served_models.get(model)
        if served is None:
            return Reply(404, google_error(404, publisher_model_not_found(params, api)))
        window = self.context_window or served.context_window
        if api == "claude":
            invalid = claude_violation(body) or _claude_limit_violation(body, served, window)
            return Reply(400, claude_error(invalid)) if invalid else None
        invalid = gemini_violation(body, model, self.issued_signatures) or _gemini_limit_violation(
            body, served, window
        )
        return Reply(400, google_error(400, invalid)) if invalid else None

    def _signed(self, reply: Reply) -> Reply:
        """Gemini 3 signs the first function call of each response, as the real model does."""
        if reply.status != 200:
            return reply
        body = json.loads(json.dumps(reply.body))
        for candidate in body.get("candidates", []):
            parts = candidate.get("content", {}).get("parts", [])
            calls = [part for part in parts if "functionCall" in part]
            if calls and "thoughtSignature" not in calls[0]:
                raw = f"signature-{len(self.issued_signatures) + 1}".encode()
                signature = base64.b64encode(raw).decode()
                calls[0]["thoughtSignature"] = signature
                self.issued_signatures[_call_key(calls[0]["functionCall"])] = signature
        return dataclasses.replace(reply, body=body)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        if reply.delay:
            time.sleep(reply.delay)
        payload = json.dumps(reply.body).encode()
        try:
            handler.send_response(reply.status)
            handler.send_header("Content-Type", "application/json; charset=UTF-8")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting: exactly what a timeout test wants

    @staticmethod
    def _send_stream(handler: BaseHTTPRequestHandler, api: str, reply: Reply, *, sse: bool) -> None:
        if reply.delay:
            time.sleep(reply.delay)
        if api == "gemini":
            pieces = vertex_streams.gemini_chunks(reply.body)
            failure = vertex_streams.GEMINI_UNAVAILABLE
        else:
            pieces = vertex_streams.claude_events(reply.body)
            failure = vertex_streams.CLAUDE_OVERLOADED
        if reply.fail_after is not None:
            pieces = [*pieces[: reply.fail_after], reply.failure or failure]
        elif reply.cut_after is not None:
            pieces = pieces[: reply.cut_after]
        if api == "claude":
            frames, kind = vertex_streams.claude_sse(pieces), "text/event-stream"
        elif sse:
            frames, kind = vertex_streams.gemini_sse(pieces), "text/event-stream"
        else:
            frames, kind = vertex_streams.gemini_json_array(pieces), "application/json"
        try:
            handler.send_response(200)
            handler.send_header("Content-Type", f"{kind}; charset=UTF-8")
            handler.end_headers()  # no length: HTTP/1.0, the body ends when the connection does
            for index, frame in enumerate(frames):
                if index and reply.pace:
                    time.sleep(reply.pace)
                handler.wfile.write(frame)
                handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass


def _streams(api: str, params: dict[str, str], body: dict[str, Any]) -> bool:
    """Gemini streams on its own route; Claude's SDK sends `stream: true` to streamRawPredict."""
    if api == "gemini":
        return params["method"] == "streamGenerateContent"
    return body.get("stream") is True


def _header(headers: dict[str, str], name: str) -> str | None:
    return next((value for key, value in headers.items() if key.lower() == name.lower()), None)


def google_error(status: int, message: str) -> dict[str, Any]:
    """Google's error body (https://cloud.google.com/apis/design/errors#http_mapping)."""
    return {
        "error": {
            "code": status,
            "message": message,
            "status": _GOOGLE_STATUS.get(status, "UNKNOWN"),
        }
    }


def publisher_model_not_found(params: dict[str, str], api: str) -> str:
    """Vertex's 404 for a model id the project cannot use, for either publisher; the page it
    points to (https://cloud.google.com/vertex-ai/generative-ai/docs/learn/model-versions)
    lists the valid ids."""
    publisher = "google" if api == "gemini" else "anthropic"
    return (
        f"Publisher Model `projects/{params['project']}/locations/{params['location']}"
        f"/publishers/{publisher}/models/{params['model']}` was not found or your project does "
        "not have access to it. Please ensure you are using a valid model version. For more "
        "information, see: https://cloud.google.com/vertex-ai/generative-ai/docs/learn/model-versions"
    )


def estimated_tokens(value: Any) -> int:
    """Tokens a request part would take, at `CHARS_PER_TOKEN` characters of its JSON each."""
    return math.ceil(len(json.dumps(value, separators=(",", ":"))) / CHARS_PER_TOKEN)


def _call_key(call: dict[str, Any]) -> str:
    return json.dumps([call.get("name"), call.get("args") or {}], sort_keys=True)


def gemini_violation(body: dict[str, Any], model: str, issued: dict[str, str]) -> str | None:
    """The first documented `generateContent` rule that `body` breaks, if any."""
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return "contents is not specified"
    roles = [content.get("role") for content in contents]
    for index, role in enumerate(roles):
        if role not in ("user", "model"):
            return f"contents[{index}].role must be 'user' or 'model'"
    # Vertex AI function calling
    # (https://cloud.google.com/vertex-ai/generative-ai/docs/multimodal/function-calling): the
    # function responses go back "combined into one Content(role='user')" after the model's
    # call turn. The stand-in holds every turn to it: no two adjacent contents of one role.
    for index in range(1, len(roles)):
        if roles[index] == roles[index - 1]:
            return f"contents[{index}]: two adjacent contents have the role {roles[index]!r}"
    for index, content in enumerate(contents):
        parts = content.get("parts") or []
        calls = [part["functionCall"] for part in parts if "functionCall" in part]
        answers = [part["functionResponse"] for part in parts if "functionResponse" in part]
        previous = contents[index - 1].get("parts") or [] if index else []
        asked = [part["functionCall"] for part in previous if "functionCall" in part]
        # Same page: every function call is answered by exactly one function response in the
        # next content, and a response answers a call of the content right before it.
        if answers and sorted(a.get("name", "") for a in answers) != sorted(
            c.get("name", "") for c in asked
        ):
            return (
                "Please ensure that the number of function response parts is equal to the "
                "number of function call parts of the function call turn."
            )
        if calls:
            following = contents[index + 1].get("parts") or [] if index + 1 < len(contents) else []
            if index + 1 < len(contents) and not any("functionResponse" in p for p in following):
                return (
                    "Please ensure that the number of function response parts is equal to the "
                    "number of function call parts of the function call turn."
                )
            if _SIGNING_MODEL.match(model):
                signature = _signature_violation(index, parts, issued)
                if signature:
                    return signature
    return None


def _gemini_limit_violation(body: dict[str, Any], served: ServedModel, window: int) -> str | None:
    # Inference reference (https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/inference),
    # generationConfig.maxOutputTokens: at most the model's output ceiling (model pages cited
    # at SERVED_MODELS); the service names the allowed range.
    ceiling = served.max_output_tokens
    requested = (body.get("generationConfig") or {}).get("maxOutputTokens")
    if requested is not None and not 1 <= requested <= ceiling:
        return (
            f"Unable to submit request because it has a maxOutputTokens value of {requested} "
            f"but the supported range is from 1 (inclusive) to {ceiling + 1} (exclusive). "
            "Update the value and try again."
        )
    # API errors page (cited at `_rejection`): 400 INVALID_ARGUMENT, "Request exceeds the
    # model's input token limit", counting the contents, system instruction and tools.
    prompt = {key: body.get(key) for key in ("contents", "systemInstruction", "tools")}
    tokens = estimated_tokens(prompt)
    if tokens > window:
        return (
            f"The input token count ({tokens}) exceeds the maximum number of tokens allowed "
            f"({window})."
        )
    return None


def _signature_violation(
    index: int, parts: list[dict[str, Any]], issued: dict[str, str]
) -> str | None:
    # Thought signatures (https://ai.google.dev/gemini-api/docs/thought-signatures and
    # https://cloud.google.com/vertex-ai/generative-ai/docs/thought-signatures): Gemini 3 puts a
    # signature on the first function call of a step and rejects a replay without it with a
    # 400; a signature received must be sent back exactly as it was, and the documented
    # placeholder stands in only for calls the model never signed (injected history).
    calls = [part for part in parts if "functionCall" in part]
    first = calls[0]
    name = first["functionCall"].get("name")
    sent = first.get("thoughtSignature")
    if sent is None:
        return f"Function call `{name}` in the {index}. content block is missing a `thought_signature`."
    expected = issued.get(_call_key(first["functionCall"]))
    if expected is not None and sent != expected:
        return f"Corrupted thought signature on function call `{name}` in content {index}."
    if expected is None and sent != SKIP_SIGNATURE:
        return f"Invalid thought signature on function call `{name}` in content {index}."
    return None


def anthropic_error(error_type: str, message: str) -> dict[str, Any]:
    """Anthropic's error body (https://docs.anthropic.com/en/api/errors): `invalid_request_error`
    400, `authentication_error` 401, `permission_error` 403, `not_found_error` 404,
    `request_too_large` 413, `rate_limit_error` 429, `api_error` 500, `overloaded_error` 529."""
    return {"type": "error", "error": {"type": error_type, "message": message}}


def claude_error(message: str) -> dict[str, Any]:
    """The body of a 400 for a request against the Messages API's rules."""
    return anthropic_error("invalid_request_error", message)


def claude_violation(body: dict[str, Any]) -> str | None:
    """The first documented Messages-API rule on Vertex that `body` breaks, if any."""
    # "Claude on Vertex AI" and Google's "Use Claude" (pages cited at VERTEX_ANTHROPIC_VERSION).
    if body.get("anthropic_version") != VERTEX_ANTHROPIC_VERSION:
        return (
            f"anthropic_version: expected {VERTEX_ANTHROPIC_VERSION!r}, "
            f"got {body.get('anthropic_version')!r}"
        )
    # Same pages: on Vertex the model is named in the endpoint URL, not in the body.
    if "model" in body:
        return "model: Extra inputs are not permitted (the model is part of the URL on Vertex)"
    # Messages API reference (https://docs.anthropic.com/en/api/messages): `max_tokens` is
    # required, with a minimum of 1.
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        return "max_tokens: Field required"
    if max_tokens < 1:
        return "max_tokens: Input should be greater than or equal to 1"
    return _messages_violation(body.get("messages")) or _tools_violation(body.get("tools"))


def _claude_limit_violation(body: dict[str, Any], served: ServedModel, window: int) -> str | None:
    # Messages API reference (https://docs.anthropic.com/en/api/messages), `max_tokens`: "Different
    # models have different maximum values"; models overview (cited at SERVED_MODELS) for them.
    if body["max_tokens"] > served.max_output_tokens:
        return (
            f"max_tokens: {body['max_tokens']} > {served.max_output_tokens}, which is the "
            "maximum allowed number of output tokens for this model"
        )
    # Context windows (https://docs.anthropic.com/en/docs/build-with-claude/context-windows):
    # a prompt larger than the window is refused with a validation error, counting the
    # system prompt, the messages and the tool definitions.
    prompt = {key: body.get(key) for key in ("system", "messages", "tools")}
    tokens = estimated_tokens(prompt)
    if tokens > window:
        return f"prompt is too long: {tokens} tokens > {window} maximum"
    return None


def _messages_violation(messages: Any) -> str | None:
    # Messages API reference (https://docs.anthropic.com/en/api/messages): `messages` is
    # required, each an object with a `role` of "user" or "assistant".
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    roles = [message.get("role") if isinstance(message, dict) else None for message in messages]
    for index, role in enumerate(roles):
        if role not in ("user", "assistant"):
            return f"messages.{index}.role: Input should be 'user' or 'assistant'"
    # Messages API reference: "The first message must always use the user role" (in earlier
    # versions of the page and in the SDKs' docstrings generated from it).
    if roles[0] != "user":
        return 'messages: first message must use the "user" role'
    # Messages API reference: the models "operate on alternating user and assistant
    # conversational turns". The page says consecutive turns of one role are combined; the
    # stand-in rejects them, stricter on purpose, because our clients promise to merge them.
    for index in range(1, len(roles)):
        if roles[index] == roles[index - 1]:
            return f'messages.{index}: roles must alternate between "user" and "assistant"'
    return _tool_pairing_violation(messages)


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [block for block in content or [] if isinstance(block, dict)]


def _tool_pairing_violation(messages: list[dict[str, Any]]) -> str | None:
    # Tool use guide, "Handling tool results"
    # (https://docs.anthropic.com/en/docs/build-with-claude/tool-use): tool result blocks must
    # immediately follow their tool use blocks, i.e. every `tool_use` of an assistant turn is
    # answered by a `tool_result` with its id in the very next user turn; in that turn the
    # `tool_result` blocks come first, any text after them; and a `tool_result` must answer a
    # `tool_use` of the assistant turn right before it.
    for index, message in enumerate(messages):
        blocks = _blocks(message)
        if message["role"] == "assistant":
            used = [block.get("id") for block in blocks if block.get("type") == "tool_use"]
            if not used:
                continue
            following = messages[index + 1] if index + 1 < len(messages) else None
            answered = {
                block.get("tool_use_id")
                for block in (_blocks(following) if following else [])
                if block.get("type") == "tool_result"
            }
            missing = [tool_id for tool_id in used if tool_id not in answered]
            if missing:
                return (
                    f"messages.{index}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {', '.join(map(str, missing))}. Each `tool_use` block "
                    "must have a corresponding `tool_result` block in the next message."
                )
            continue
        kinds = [block.get("type") for block in blocks]
        if "tool_result" not in kinds:
            continue
        first_other = next((i for i, kind in enumerate(kinds) if kind != "tool_result"), len(kinds))
        if "tool_result" in kinds[first_other:]:
            return (
                f"messages.{index}: `tool_result` blocks must come first in the content, "
                "before any other block"
            )
        previous = messages[index - 1] if index > 0 else None
        issued = {
            block.get("id")
            for block in (_blocks(previous) if previous else [])
            if block.get("type") == "tool_use"
        }
        for block in blocks:
            if block.get("type") == "tool_result" and block.get("tool_use_id") not in issued:
                return (
                    f"messages.{index}: unexpected `tool_use_id` found in `tool_result` blocks: "
                    f"{block.get('tool_use_id')}. Each `tool_result` block must have a "
                    "corresponding `tool_use` block in the previous message."
                )
    return None


def _tools_violation(tools: Any) -> str | None:
    # Messages API reference (https://docs.anthropic.com/en/api/messages), `tools`: each client
    # tool has a `name` and an `input_schema`, a JSON schema whose `type` is "object".
    if tools is None:
        return None
    if not isinstance(tools, list):
        return "tools: Input should be a valid list"
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict) or not tool.get("name"):
            return f"tools.{index}.name: Field required"
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            return f"tools.{index}.input_schema: Field required"
        if schema.get("type") != "object":
            return f"tools.{index}.input_schema.type: Input should be 'object'"
    return None


# -- replies, in the documented response shapes ----------------------------------------------


def gemini_reply(
    *parts: dict[str, Any],
    finish_reason: str = "STOP",
    prompt_tokens: int = 11,
    output_tokens: int = 7,
    cached_tokens: int | None = None,
    thoughts_tokens: int | None = None,
    model_version: str = "gemini-2.5-flash-001",
) -> dict[str, Any]:
    """A `generateContent` response body with one candidate made of `parts`.

    Inference reference (https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/inference)
    and the `Candidate.FinishReason` enum of the Vertex API: STOP, MAX_TOKENS, SAFETY,
    RECITATION, OTHER, BLOCKLIST, PROHIBITED_CONTENT, SPII, MALFORMED_FUNCTION_CALL and
    MODEL_ARMOR ("The model response was blocked by Model Armor"). A candidate may come with
    a content that has no parts at all, which is what no `parts` gives. In `usageMetadata`,
    `promptTokenCount` includes `cachedContentTokenCount`, `thoughtsTokenCount` is counted
    apart from `candidatesTokenCount`, and `totalTokenCount` adds them up.
    """
    content: dict[str, Any] = {"role": "model"}
    if parts:
        content["parts"] = list(parts)
    usage: dict[str, Any] = {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": output_tokens,
        "totalTokenCount": prompt_tokens + output_tokens + (thoughts_tokens or 0),
    }
    if cached_tokens is not None:
        usage["cachedContentTokenCount"] = cached_tokens
    if thoughts_tokens is not None:
        usage["thoughtsTokenCount"] = thoughts_tokens
    return {
        "candidates": [{"content": content, "finishReason": finish_reason}],
        "usageMetadata": usage,
        "modelVersion": model_version,
    }


def gemini_blocked_prompt(
    block_reason: str, *, message: str | None = None, prompt_tokens: int = 5
) -> dict[str, Any]:
    """A response to a prompt the service refused: no candidates, only `promptFeedback`.

    Inference reference (cited at `gemini_reply`) and the `PromptFeedback.BlockedReason` enum:
    SAFETY, OTHER, BLOCKLIST, PROHIBITED_CONTENT, MODEL_ARMOR ("The user prompt was blocked by
    Model Armor") and JAILBREAK.
    """
    feedback: dict[str, Any] = {"blockReason": block_reason}
    if message is not None:
        feedback["blockReasonMessage"] = message
    return {
        "promptFeedback": feedback,
        "usageMetadata": {"promptTokenCount": prompt_tokens, "totalTokenCount": prompt_tokens},
        "modelVersion": "gemini-2.5-flash-001",
    }


def claude_reply(
    *content: dict[str, Any],
    stop_reason: str = "end_turn",
    input_tokens: int = 13,
    output_tokens: int = 5,
    cache_creation_input_tokens: int = 0,
    cache_read_input_tokens: int = 0,
    thinking_tokens: int | None = None,
    model: str = "claude-sonnet-4-5",
) -> dict[str, Any]:
    """A Messages-API response body, as Claude on Vertex returns it from `rawPredict`.

    Messages API reference (https://docs.anthropic.com/en/api/messages) and "Handling stop
    reasons" (https://docs.anthropic.com/en/api/handling-stop-reasons): `stop_reason` is
    end_turn, max_tokens, stop_sequence, tool_use, pause_turn, refusal or
    model_context_window_exceeded; `content` may be empty with end_turn (documented after
    tool results), and a reply cut at max_tokens may end in a `tool_use` whose input was cut
    short. `usage.input_tokens` counts only the tokens after the last cache breakpoint; the
    cache writes and reads are reported beside it and the prompt is the sum of the three
    (prompt caching, https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching).
    `usage.output_tokens_details.thinking_tokens`, where reported, is the part of
    `output_tokens` spent thinking.
    """
    usage: dict[str, Any] = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": cache_creation_input_tokens,
        "cache_read_input_tokens": cache_read_input_tokens,
    }
    if thinking_tokens is not None:
        usage["output_tokens_details"] = {"thinking_tokens": thinking_tokens}
    return {
        "id": "msg_vrtx_01",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": list(content),
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }
