"""The OpenTelemetry semantic conventions the spans follow: names, well-known values, and the
few rules that pick a value. One place, so a span cannot drift from the others.

- GenAI spans (model calls, tool calls):
  https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/ and the attribute registry
  https://opentelemetry.io/docs/specs/semconv/registry/attributes/gen-ai/
- Messaging spans, Pub/Sub's flavour:
  https://opentelemetry.io/docs/specs/semconv/messaging/messaging-spans/ and
  https://opentelemetry.io/docs/specs/semconv/messaging/gcp-pubsub/
- HTTP server spans: https://opentelemetry.io/docs/specs/semconv/http/http-spans/

All of these are the conventions' "Development" status at the time of writing. Attributes of
our own are under `agent.`, a namespace no convention uses, never under a convention's (the
`llm.*` names other instrumentations use, OpenInference's among them, mean something else).
Strings rather than the `opentelemetry-semantic-conventions` package: its GenAI and messaging
names live in an `_incubating` module that is not a stable import, and the functions load the
OpenTelemetry API only.
"""

from __future__ import annotations

import uuid

from messagedb_agent.store.stream_name import InvalidStreamName, thread_id_of

# -- GenAI ----------------------------------------------------------------------------------------

GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TEMPERATURE = "gen_ai.request.temperature"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
# input_tokens includes the cached ones, which cache_read.input_tokens counts again (registry)
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_TOOL_TYPE = "gen_ai.tool.type"
GEN_AI_TOOL_CALL_ID = "gen_ai.tool.call.id"

OPERATION_CHAT = "chat"
OPERATION_EXECUTE_TOOL = "execute_tool"
# "Function: a tool executed on the client-side, where the agent generates parameters for a
# predefined function, and the client executes the logic": every tool here, MCP ones included,
# is run by this process with the arguments the model produced.
TOOL_TYPE_FUNCTION = "function"

# gen_ai.provider.name's well-known values: `gcp.vertex_ai` is "used when accessing the
# 'aiplatform.googleapis.com' endpoint", which is where Gemini (google-genai in Vertex mode)
# and Claude (AnthropicVertex, Vertex AI's partner-model endpoint) are both called. The value
# names the API spoken to, so `anthropic` (Anthropic's own API) does not apply.
PROVIDER_VERTEX_AI = "gcp.vertex_ai"
PROVIDER_GCP_UNKNOWN = "gcp.gen_ai"  # "may be used when specific backend is unknown"
# A custom value (allowed where no well-known one applies): the in-process offline stand-in.
PROVIDER_OFFLINE = "messagedb_agent.offline"
_OFFLINE_MODELS = frozenset({"offline", "offline-stand-in"})


def provider_name(model: str) -> str:
    """gen_ai.provider.name for a model name, by the rule that picks its client
    (llm/factory.py): gemini-* and claude-* on Vertex AI, `offline` in process."""
    name = model.strip().lower()
    if name in _OFFLINE_MODELS:
        return PROVIDER_OFFLINE
    if name.startswith(("gemini", "claude")):
        return PROVIDER_VERTEX_AI
    return PROVIDER_GCP_UNKNOWN


def runs_in_process(model: str) -> bool:
    """A model in this process: its span is INTERNAL rather than CLIENT (the GenAI spec's
    "MAY be set to INTERNAL on spans representing call to models running in the same process")."""
    return model.strip().lower() in _OFFLINE_MODELS


def conversation_id(stream_name: str) -> str | None:
    """gen_ai.conversation.id: the thread's id, as the API and the CLI show it; None for any
    stream that is not a thread."""
    try:
        thread: uuid.UUID = thread_id_of(stream_name)
    except InvalidStreamName:
        return None
    return str(thread)


# -- messaging ------------------------------------------------------------------------------------

MESSAGING_SYSTEM = "messaging.system"
MESSAGING_OPERATION_TYPE = "messaging.operation.type"
MESSAGING_OPERATION_NAME = "messaging.operation.name"
MESSAGING_DESTINATION_NAME = "messaging.destination.name"
MESSAGING_SUBSCRIPTION_NAME = "messaging.destination.subscription.name"
MESSAGING_MESSAGE_ID = "messaging.message.id"
MESSAGING_BATCH_MESSAGE_COUNT = "messaging.batch.message_count"
MESSAGING_DELIVERY_ATTEMPT = "messaging.gcp_pubsub.message.delivery_attempt"

SYSTEM_GCP_PUBSUB = "gcp_pubsub"  # "messaging.system MUST be set to gcp_pubsub"
# Publishing is `send` (type and Pub/Sub's well-known name). Handling a push is the generic
# `process` operation: "Process spans SHOULD be created ... when those operations are not
# initiated by the application code (push-based scenarios)". Pub/Sub's `subscribe` names the
# client library's span of a streaming pull, from receipt to settlement, which no code here has.
OPERATION_SEND = "send"
OPERATION_PROCESS = "process"


def messaging_span_name(operation: str, destination: str | None) -> str:
    """`{messaging.operation.name} {destination}`; the operation alone when the destination is
    not known ("the instrumentation SHOULD omit the {destination}")."""
    return f"{operation} {destination}" if destination else operation


def short_name(resource: str | None) -> str | None:
    """`agent-steps` of `projects/p/topics/agent-steps` (or of itself): the destination names
    the spec's examples use."""
    if not resource:
        return None
    return resource.rstrip("/").rsplit("/", 1)[-1] or None


# -- HTTP -----------------------------------------------------------------------------------------

HTTP_REQUEST_METHOD = "http.request.method"
HTTP_RESPONSE_STATUS_CODE = "http.response.status_code"
HTTP_ROUTE = "http.route"
URL_PATH = "url.path"
URL_SCHEME = "url.scheme"


def original_scheme(forwarded: str | None, x_forwarded_proto: str | None, default: str) -> str:
    """url.scheme: "the scheme of the original client request, if known (e.g. from
    Forwarded#proto, X-Forwarded-Proto ...). Otherwise, the scheme of the immediate peer
    request." Cloud Run's front end terminates TLS and sets X-Forwarded-Proto."""
    if forwarded:
        first = forwarded.split(",", 1)[0]
        for pair in first.split(";"):
            key, _, value = pair.strip().partition("=")
            if key.strip().lower() == "proto" and value.strip():
                return value.strip().strip('"').lower()
    if x_forwarded_proto and x_forwarded_proto.strip():
        return x_forwarded_proto.split(",", 1)[0].strip().lower()
    return default
