"""The OpenAPI document: valid OpenAPI 3.1, complete, and true to what the code answers."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest
from flask.testing import FlaskClient
from schemathesis.specs.openapi.definitions import OPENAPI_31
from tests.api.conftest import MakeApi, start

from messagedb_agent.api.routes import ROUTES
from messagedb_agent.settings import Settings


@pytest.fixture
def document(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.get_json()
    return body


def conforms(document: dict[str, Any], schema_name: str, instance: Any) -> None:
    """Validate against a component schema, resolving its refs inside the document."""
    schema = {**document, "$ref": f"#/components/schemas/{schema_name}"}
    jsonschema.Draft202012Validator(schema).validate(instance)


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(OPENAPI_31).validate(document)
    assert document["openapi"] == "3.1.0"
    for schema in document["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_every_route_is_documented_with_its_method(document: dict[str, Any]) -> None:
    for route in ROUTES:
        operation = document["paths"][route.path][route.method.lower()]
        assert operation["operationId"] == route.operation_id
        for status in (*route.answers, *route.errors):
            assert str(status) in operation["responses"], (route.path, status)


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    text = str(document)
    for name in set(re.findall(r"#/components/schemas/(\w+)", text)):
        assert name in document["components"]["schemas"], name


def test_api_routes_require_the_bearer_scheme(document: dict[str, Any]) -> None:
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert document["paths"]["/v1/threads"]["get"]["security"] == [{"bearerAuth": []}]
    assert document["paths"]["/healthz"]["get"]["security"] == []


def test_configured_limits_are_written_into_the_document(
    make_api: MakeApi, settings: Settings
) -> None:
    api = make_api(core=settings.replace(max_message_length=77), max_wait_seconds=4)
    document = api.openapi()

    message = document["components"]["schemas"]["AddMessageRequest"]["properties"]["message"]
    wait = document["paths"]["/v1/threads/{thread_id}/messages"]["post"]["parameters"][1]
    assert message["maxLength"] == 77
    assert (wait["name"], wait["schema"]["maximum"]) == ("wait", 4)


def test_the_error_schema_is_the_one_every_error_uses(document: dict[str, Any]) -> None:
    error = document["paths"]["/v1/threads"]["post"]["responses"]["429"]
    assert error["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }
    assert "Retry-After" in error["headers"]


def test_answers_match_their_documented_schemas(
    client: FlaskClient, auth: dict[str, str], document: dict[str, Any]
) -> None:
    thread_id = start(client, auth)
    added = client.post(f"/v1/threads/{thread_id}/messages", json={"message": "m"}, headers=auth)

    conforms(document, "MessageAccepted", added.get_json())
    conforms(document, "ThreadDetail", client.get(f"/v1/threads/{thread_id}", headers=auth).json)
    conforms(
        document, "EventPage", client.get(f"/v1/threads/{thread_id}/events", headers=auth).json
    )
    conforms(document, "ThreadList", client.get("/v1/threads", headers=auth).json)
    conforms(document, "Health", client.get("/healthz").json)
    conforms(document, "ErrorBody", client.get("/v1/threads/nope", headers=auth).json)
    conforms(document, "ErrorBody", client.get("/v1/threads").json)


def test_the_paging_parameters_are_documented(document: dict[str, Any]) -> None:
    def names(path: str) -> list[str]:
        return [p["name"] for p in document["paths"][path]["get"].get("parameters", [])]

    detail = document["paths"]["/v1/threads/{thread_id}"]["get"]
    order = next(p for p in detail["parameters"] if p["name"] == "order")
    assert names("/v1/threads") == ["limit", "cursor"]
    assert names("/v1/threads/{thread_id}") == ["thread_id", "limit", "cursor", "order"]
    assert order["schema"]["enum"] == ["oldest", "newest"]
    assert "400" in detail["responses"]
    assert "next_cursor" in document["components"]["schemas"]["ThreadDetail"]["properties"]
