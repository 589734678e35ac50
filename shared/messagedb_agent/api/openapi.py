"""The OpenAPI 3.1 document, generated from the route table and the pydantic models.

Limits that come from configuration (message length, longest wait, whether a callback URL
may be plain http) are written into the schemas at generation time, so the document describes
this deployment, not a default one.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from messagedb_agent.api.errors import ErrorBody
from messagedb_agent.api.idempotency import HEADER, KEY_PATTERN
from messagedb_agent.api.models import HTTPS_CALLBACK_URL_PATTERN
from messagedb_agent.api.routes import Route
from messagedb_agent.settings import Settings
from messagedb_agent.settings.serving import ApiSettings

REF = "#/components/schemas/{model}"
_ERROR_DESCRIPTIONS = {
    400: "Malformed request: `invalid_json` or `invalid_request` (see `details`).",
    401: "Missing, invalid or expired token: `unauthorized` or `session_expired`.",
    404: "No such thread for this user: `thread_not_found` (or `not_found`).",
    409: "The thread has ended: `thread_closed`.",
    413: "The body is too large: `payload_too_large`.",
    415: "A body that is not `application/json` (UTF-8): `unsupported_media_type`.",
    422: "Refused content: `invalid_message`, or `idempotency_key_reused`.",
    429: "Too many requests: `rate_limited`; retry after `Retry-After` seconds.",
    500: "Unexpected failure: `internal_error`.",
    503: "The database cannot be reached: `unavailable`.",
}


def build_openapi(routes: tuple[Route, ...], settings: Settings) -> dict[str, Any]:
    schemas = _component_schemas(routes)
    for name in ("StartThreadRequest", "AddMessageRequest"):
        schemas[name]["properties"]["message"]["maxLength"] = settings.threads.max_message_length
    if not settings.callbacks.callback_allow_private:
        callback_url = schemas["StartThreadRequest"]["properties"]["callback_url"]
        for option in callback_url["anyOf"]:
            if option.get("type") == "string":
                option["pattern"] = HTTPS_CALLBACK_URL_PATTERN
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, settings.api)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "messagedb-agent ingest API",
            "version": "1.0.0",
            "description": "Start conversations with the agent, send messages, read replies. "
            'Every error body is `{"error": {"code", "message", "details"?}}`; '
            "POSTs accept an `Idempotency-Key` so retries are safe.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def _component_schemas(routes: tuple[Route, ...]) -> dict[str, Any]:
    inputs: set[type[BaseModel]] = set()
    outputs: set[type[BaseModel]] = {ErrorBody}
    for route in routes:
        if route.body is not None:
            inputs.add(_documented(route.body))
        outputs.update(model for model, _ in route.answers.values() if model is not None)
    pairs: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        *((m, "validation") for m in sorted(inputs, key=lambda m: m.__name__)),
        *((m, "serialization") for m in sorted(outputs, key=lambda m: m.__name__)),
    ]
    _, top = models_json_schema(pairs, ref_template=REF)
    defs: dict[str, Any] = top.get("$defs", {})
    return defs


# One Server-Sent Event as a client parses it (OpenAPI 3.2's `itemSchema` reading, which
# schemathesis applies): `data` is one JSON document, `id` the resume cursor.
SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "data": {"type": "string", "contentMediaType": "application/json"},
        "id": {"type": "string"},
        "event": {"type": "string"},
    },
    "required": ["data"],
}


def _documented(model: type[BaseModel]) -> type[BaseModel]:
    """The model a body is documented with: its own, or the one it stands for (a body the
    router checks loosely and its handler wholly, such as AG-UI's run input)."""
    documented = getattr(model, "documented_model", None)
    return documented() if callable(documented) else model


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _operation(route: Route, api_settings: ApiSettings) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "security": [{"bearerAuth": []}] if route.authenticated else [],
    }
    if route.description:
        operation["description"] = route.description
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in route.rule_params
    ]
    if route.query is not None:
        parameters.extend(_query_parameters(route.query, api_settings))
    if route.idempotent:
        parameters.append(
            {
                "name": HEADER,
                "in": "header",
                "required": False,
                "description": "Makes a retried POST safe: the first answer is returned again.",
                "schema": {"type": "string", "pattern": KEY_PATTERN},
            }
        )
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {
            "required": route.body_required,
            "content": _json(_ref(_documented(route.body))),
        }
    responses: dict[str, Any] = {}
    for status, (model, description) in sorted(route.answers.items()):
        answer: dict[str, Any] = {"description": description}
        if route.streams:
            answer["content"] = {"text/event-stream": {"schema": SSE_EVENT}}
        else:
            answer["content"] = _json(_ref(model) if model is not None else {"type": "object"})
        responses[str(status)] = answer
    for status in sorted(route.errors):
        error: dict[str, Any] = {
            "description": _ERROR_DESCRIPTIONS[status],
            "content": _json(_ref(ErrorBody)),
        }
        if status in (429, 503):
            error["headers"] = {
                "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
            }
        responses[str(status)] = error
    operation["responses"] = responses
    return operation


def _query_parameters(model: type[BaseModel], api_settings: ApiSettings) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", []))
    parameters: list[dict[str, Any]] = []
    for name, prop in schema.get("properties", {}).items():
        prop = _without_null(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        if name == "wait":
            prop["maximum"] = api_settings.max_wait_seconds
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": prop,
        }
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or has a value; `null` has no spelling in a query string."""
    options = prop.get("anyOf")
    if not options:
        return dict(prop)
    kept = [o for o in options if o.get("type") != "null"]
    rest = {k: v for k, v in prop.items() if k != "anyOf" and not (k == "default" and v is None)}
    if len(kept) == 1:
        return {**kept[0], **rest}
    return {"anyOf": kept, **rest}
