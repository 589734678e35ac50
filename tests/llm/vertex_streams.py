"""The streamed forms of the two Vertex routes, built from a whole scripted reply.

A test scripts one complete response body; when the client asked for a stream, the stand-in
cuts that body into the pieces the real service sends, in the documented order, so the clients'
reassembly is held to the wire format rather than to a shape of our choosing.

- Gemini, `streamGenerateContent`
  (https://cloud.google.com/vertex-ai/generative-ai/docs/reference/rest/v1/projects.locations.publishers.models/streamGenerateContent):
  a series of `GenerateContentResponse` objects, as Server-Sent Events `data:` lines when the
  request says `alt=sse` (what the SDK asks for) and as one JSON array otherwise. Text arrives
  in pieces; a function call arrives whole in one chunk; `finishReason` and the final
  `usageMetadata` come on the last chunk, while earlier chunks carry the running usage. An
  error after the stream began arrives as a chunk holding only Google's `error` object.
- Claude, `streamRawPredict` with `"stream": true`
  (https://docs.anthropic.com/en/docs/build-with-claude/streaming, and "Claude on Vertex AI",
  https://docs.anthropic.com/en/api/claude-on-vertex-ai): `message_start` (usage with the input
  counts), then per content block `content_block_start`, its deltas (`text_delta`, or
  `input_json_delta` pieces of a tool call's input as partial JSON), `content_block_stop`; a
  `ping` may come anywhere; `message_delta` with the `stop_reason` and the cumulative output
  usage; `message_stop`. An error after the stream began is an `error` event, e.g. an
  `overloaded_error` "which would normally correspond to an HTTP 529 in a non-streaming
  context" (same streaming page).
"""

from __future__ import annotations

import json
import re
from typing import Any

GEMINI_UNAVAILABLE = {
    "error": {
        "code": 503,
        "message": "The service is currently unavailable.",
        "status": "UNAVAILABLE",
    }
}
CLAUDE_OVERLOADED = {
    "type": "error",
    "error": {"type": "overloaded_error", "message": "Overloaded"},
}


def text_pieces(text: str, size: int = 3) -> list[str]:
    """`text` in pieces of about `size` words, spaces kept, so the pieces join back exactly."""
    words = re.findall(r"\S+\s*|\s+", text)
    return ["".join(words[i : i + size]) for i in range(0, len(words), size)] or [text]


# -- Gemini ----------------------------------------------------------------------------------


def gemini_chunks(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The `GenerateContentResponse` chunks the service streams for the whole `body`."""
    head = {key: body[key] for key in ("modelVersion", "responseId") if key in body}
    usage = body.get("usageMetadata")
    candidates = body.get("candidates") or []
    if not candidates:  # a blocked prompt: one chunk, feedback and usage only
        return [body]
    candidate = candidates[0]
    content = candidate.get("content") or {}
    pieces: list[dict[str, Any]] = []
    for part in content.get("parts") or []:
        if "text" in part and not part.get("thought"):
            texts = text_pieces(part["text"])
            pieces.extend({"text": text} for text in texts[:-1])
            last = dict(part, text=texts[-1])
            pieces.append(last)
        else:
            pieces.append(part)
    running = _running_usage(usage)
    chunks = [
        {
            "candidates": [{"content": {"role": "model", "parts": [piece]}, "index": 0}],
            **({"usageMetadata": running} if running else {}),
            **head,
        }
        for piece in pieces
    ]
    ending = {key: value for key, value in candidate.items() if key != "content"}
    if chunks:
        chunks[-1]["candidates"][0].update(ending)
    else:  # finished with no parts at all
        chunks.append({"candidates": [{"content": {"role": "model"}, **ending}], **head})
    if usage is not None:
        chunks[-1]["usageMetadata"] = usage
    return chunks


def _running_usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """Before the last chunk the service reports the prompt's count and a running total."""
    if usage is None:
        return None
    prompt = usage.get("promptTokenCount", 0)
    return {"promptTokenCount": prompt, "totalTokenCount": prompt}


def gemini_sse(chunks: list[dict[str, Any]]) -> list[bytes]:
    return [b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n" for chunk in chunks]


def gemini_json_array(chunks: list[dict[str, Any]]) -> list[bytes]:
    """Without `alt=sse` the same chunks form one JSON array, written as they come."""
    pieces = [("[" if i == 0 else ",\r\n") + json.dumps(c) for i, c in enumerate(chunks)]
    return [piece.encode() for piece in pieces] + [b"]"]


# -- Claude ----------------------------------------------------------------------------------


def claude_events(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The stream's events, in order, for the whole Messages-API `message`."""
    usage = dict(message.get("usage") or {})
    output_tokens = usage.pop("output_tokens", 0)
    details = usage.pop("output_tokens_details", None)
    start = dict(message, content=[], stop_reason=None, stop_sequence=None)
    start["usage"] = dict(usage, output_tokens=min(1, output_tokens))
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(message.get("content") or []):
        events.extend(_block_events(index, block))
        if index == 0:
            events.append({"type": "ping"})
    final_usage: dict[str, Any] = {"output_tokens": output_tokens}
    if details is not None:
        final_usage["output_tokens_details"] = details
    events.append(
        {
            "type": "message_delta",
            "delta": {
                "stop_reason": message.get("stop_reason"),
                "stop_sequence": message.get("stop_sequence"),
            },
            "usage": final_usage,
        }
    )
    events.append({"type": "message_stop"})
    return events


def _block_events(index: int, block: dict[str, Any]) -> list[dict[str, Any]]:
    if block.get("type") == "text":
        deltas = [{"type": "text_delta", "text": text} for text in text_pieces(block["text"])]
        opened = {"type": "text", "text": ""}
    elif block.get("type") == "tool_use":
        raw = json.dumps(block.get("input") or {})
        step = max(1, len(raw) // 3)
        deltas = [
            {"type": "input_json_delta", "partial_json": raw[i : i + step]}
            for i in range(0, len(raw), step)
        ]
        opened = dict(block, input={})
    else:
        return [
            {"type": "content_block_start", "index": index, "content_block": block},
            {"type": "content_block_stop", "index": index},
        ]
    return [
        {"type": "content_block_start", "index": index, "content_block": opened},
        *({"type": "content_block_delta", "index": index, "delta": d} for d in deltas),
        {"type": "content_block_stop", "index": index},
    ]


def claude_sse(events: list[dict[str, Any]]) -> list[bytes]:
    return [f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode() for event in events]
