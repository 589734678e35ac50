"""A local HTTP server speaking the two Vertex AI REST routes the providers use.

It serves Gemini's `generateContent` and Claude's `rawPredict` on 127.0.0.1, records every
request (path, headers, JSON body) so tests can assert on what the real SDKs put on the wire,
and answers from a queue of scripted replies, which may be errors or slow.

It is as strict as the real service about the request rules it knows: a body that breaks one
is answered with the service's 400 and consumes no scripted reply, so a client that passes
here does not merely pass because nothing looked.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GEMINI_ROUTE = re.compile(
    r"^/v1beta1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/publishers/google/models/(?P<model>[^/:]+):generateContent$"
)
CLAUDE_ROUTE = re.compile(
    r"^/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/publishers/anthropic/models/(?P<model>[^/:]+):(?:rawPredict|streamRawPredict)$"
)

# The placeholder Google documents for function calls whose signature was never issued
# (https://ai.google.dev/gemini-api/docs/thought-signatures), as it travels on the wire.
SKIP_SIGNATURE = "skip_thought_signature_validator"
# Models that issue and validate thought signatures on function calls (same page).
_SIGNING_MODEL = re.compile(r"^gemini-3")

# Anthropic, "Claude on Vertex AI" (https://docs.anthropic.com/en/api/claude-on-vertex-ai) and
# Google, "Use Claude" (https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude/use-claude):
# the version travels in the body and must be this value.
VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"

_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


@dataclass(frozen=True)
class Recorded:
    api: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]
    delay: float = 0.0


@dataclass
class FakeVertex:
    """Start with `start()`, script with `reply(...)`, read `requests` afterwards."""

    requests: list[Recorded] = field(default_factory=list)
    # Thought signatures this server put on Gemini 3 function calls, by call name and arguments.
    issued_signatures: dict[str, str] = field(default_factory=dict)
    _replies: deque[Reply] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def reply(self, body: dict[str, Any], *, status: int = 200, delay: float = 0.0) -> None:
        with self._lock:
            self._replies.append(Reply(status, body, delay))

    def error(self, status: int, message: str, *, delay: float = 0.0) -> None:
        """An error in Google's API format, which Vertex uses for both publishers."""
        self.reply(google_error(status, message), status=status, delay=delay)

    @property
    def last(self) -> Recorded:
        assert self.requests, "the server received no request"
        return self.requests[-1]

    def start(self) -> FakeVertex:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                fake._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test asserts on `requests` instead."""

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="fake-vertex",
            daemon=True,
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else {}
        path = handler.path.split("?", 1)[0]
        api, match = "gemini", GEMINI_ROUTE.match(path)
        if match is None:
            api, match = "claude", CLAUDE_ROUTE.match(path)
        if match is None:
            self._send(handler, Reply(404, {"error": {"code": 404, "message": f"no route {path}"}}))
            return
        model = match.group("model")
        with self._lock:
            self.requests.append(
                Recorded(api, path, match.groupdict(), dict(handler.headers.items()), body)
            )
            reply: Reply | None
            if api == "claude" and (invalid := claude_violation(body)) is not None:
                reply = Reply(400, claude_error(invalid))
            elif api == "gemini" and (
                invalid := gemini_violation(body, model, self.issued_signatures)
            ):
                reply = Reply(400, google_error(400, invalid))
            else:
                reply = self._replies.popleft() if self._replies else None
                if reply is not None and api == "gemini" and _SIGNING_MODEL.match(model):
                    reply = self._signed(reply)
        if reply is None:
            reply = Reply(500, {"error": {"code": 500, "message": "no reply scripted"}})
        self._send(handler, reply)

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
        return Reply(reply.status, body, reply.delay)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        if reply.delay:
            time.sleep(reply.delay)
        payload = json.dumps(reply.body).encode()
        try:
            handler.send_response(reply.status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting: exactly what a timeout test wants


def google_error(status: int, message: str) -> dict[str, Any]:
    return {
        "error": {
            "code": status,
            "message": message,
            "status": _GOOGLE_STATUS.get(status, "UNKNOWN"),
        }
    }


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


def claude_error(message: str) -> dict[str, Any]:
    """Anthropic's error body, which Vertex passes through for the Claude routes."""
    return {"type": "error", "error": {"type": "invalid_request_error", "message": message}}


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


def gemini_reply(
    *parts: dict[str, Any],
    finish_reason: str = "STOP",
    prompt_tokens: int = 11,
    output_tokens: int = 7,
    model_version: str = "gemini-2.5-flash-001",
) -> dict[str, Any]:
    """A `generateContent` response body with one candidate made of `parts`."""
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": list(parts)},
                "finishReason": finish_reason,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": output_tokens,
            "totalTokenCount": prompt_tokens + output_tokens,
        },
        "modelVersion": model_version,
    }


def claude_reply(
    *content: dict[str, Any],
    stop_reason: str = "end_turn",
    input_tokens: int = 13,
    output_tokens: int = 5,
    model: str = "claude-sonnet-4-5",
) -> dict[str, Any]:
    """A Messages-API response body, as Claude on Vertex returns it from `rawPredict`."""
    return {
        "id": "msg_vrtx_01",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": list(content),
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }
