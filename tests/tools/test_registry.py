"""Declaring tools: schemas from type hints and docstrings, the context kept out of them."""

from __future__ import annotations

from typing import Any, Literal

import pytest

from messagedb_agent.llm.types import ToolSpec
from messagedb_agent.tools import ToolContext, ToolInputError, ToolRegistry, default_registry, tool
from messagedb_agent.tools.registry import Tool, tool_of


@tool
def book_flight(
    ctx: ToolContext,
    destination: str,
    passengers: int,
    cabin: Literal["economy", "business"] = "economy",
    max_price: float | None = None,
    flexible: bool = False,
    stops: list[str] | None = None,
) -> dict[str, Any]:
    """Book a flight for the user.

    The booking is held for an hour before it is paid.

    Args:
        destination: IATA code of the airport,
            for example "CDG".
        passengers (int): How many people travel.
        cabin: Which cabin to book.
    Returns:
        The booking.
    """
    return {"destination": destination, "owner": ctx.owner}


@tool(name="shout", description="Say it loudly.")
def _shout(text: str) -> str:
    return text.upper()


def test_schema_lists_parameters_without_the_context() -> None:
    schema = tool_of(book_flight).parameters
    assert schema["type"] == "object"
    assert list(schema["properties"]) == [
        "destination",
        "passengers",
        "cabin",
        "max_price",
        "flexible",
        "stops",
    ]
    assert "ctx" not in schema["properties"]
    assert schema["additionalProperties"] is False


def test_parameters_without_defaults_are_required() -> None:
    assert tool_of(book_flight).parameters["required"] == ["destination", "passengers"]


def test_types_map_to_json_types_and_optionals_to_plain_types() -> None:
    props = tool_of(book_flight).parameters["properties"]
    assert props["destination"]["type"] == "string"
    assert props["passengers"]["type"] == "integer"
    assert props["max_price"] == {"type": "number"}
    assert props["flexible"]["type"] == "boolean"
    assert props["stops"] == {"type": "array", "items": {"type": "string"}}


def test_literal_becomes_an_enum_and_defaults_are_recorded() -> None:
    props = tool_of(book_flight).parameters["properties"]
    assert props["cabin"]["enum"] == ["economy", "business"]
    assert props["cabin"]["default"] == "economy"
    assert props["flexible"]["default"] is False


def test_docstring_gives_the_description_and_parameter_descriptions() -> None:
    declared = tool_of(book_flight)
    assert declared.description == "Book a flight for the user."
    props = declared.parameters["properties"]
    assert props["destination"]["description"] == 'IATA code of the airport, for example "CDG".'
    assert props["passengers"]["description"] == "How many people travel."
    assert "description" not in props["flexible"]


def _schema_keywords(node: Any) -> set[str]:
    """Every keyword used in a schema, property names left out."""
    if isinstance(node, list):
        return set().union(*(_schema_keywords(item) for item in node))
    if not isinstance(node, dict):
        return set()
    found = set(node)
    for key, value in node.items():
        if key == "properties":
            found |= set().union(*(_schema_keywords(sub) for sub in value.values()))
        else:
            found |= _schema_keywords(value)
    return found


def test_schemas_stay_in_the_subset_both_providers_accept() -> None:
    keywords = set().union(*(_schema_keywords(s.parameters) for s in default_registry().specs()))
    assert keywords.isdisjoint({"title", "$ref", "$defs", "anyOf", "oneOf", "allOf"})
    assert {"type", "properties", "required", "enum", "default", "description"} <= keywords


def test_decorator_with_arguments_overrides_name_and_description() -> None:
    declared = tool_of(_shout)
    assert (declared.name, declared.description) == ("shout", "Say it loudly.")
    assert _shout("hi") == "HI"


def test_decorated_function_stays_directly_callable(offline_ctx: ToolContext) -> None:
    assert book_flight(offline_ctx, "CDG", 2) == {"destination": "CDG", "owner": "ada"}


def test_registry_lists_specs_in_registration_order() -> None:
    registry = ToolRegistry([book_flight, _shout])
    assert registry.names() == ["book_flight", "shout"]
    assert "shout" in registry
    assert "missing" not in registry
    [first, second] = registry.specs()
    assert isinstance(first, ToolSpec)
    assert first.parameters == tool_of(book_flight).parameters
    assert second.name == "shout"


def test_registry_refuses_two_tools_with_one_name() -> None:
    registry = ToolRegistry([_shout])
    with pytest.raises(ValueError, match="already registered"):
        registry.register(_shout)


def test_registry_get_returns_none_for_unknown_names() -> None:
    registry = ToolRegistry([_shout])
    assert registry.get("shout") is tool_of(_shout)
    assert registry.get("whisper") is None


def test_plain_functions_register_without_the_decorator() -> None:
    def add(a: int, b: int = 1) -> int:
        """Add two numbers."""
        return a + b

    declared = ToolRegistry().register(add)
    assert declared.description == "Add two numbers."
    assert declared.parameters["required"] == ["a"]


def test_a_parameter_naming_the_user_is_refused() -> None:
    def spy(user_id: str) -> str:
        return user_id

    with pytest.raises(ValueError, match="user_id"):
        tool(spy)


def test_untyped_parameters_are_refused() -> None:
    def loose(value) -> None:  # type: ignore[no-untyped-def]
        return None

    with pytest.raises(TypeError, match="type annotation"):
        tool(loose)


def test_validation_reports_every_problem_at_once() -> None:
    with pytest.raises(ToolInputError) as raised:
        tool_of(book_flight).validate({"passengers": "many", "cabin": "first", "seat": "1A"})
    message = str(raised.value)
    assert "'destination' is required" in message
    assert "'passengers'" in message
    assert "'cabin'" in message
    assert "'seat' is not a parameter" in message


def test_schema_tools_check_required_unknown_and_types() -> None:
    remote = Tool.from_schema(
        "lookup",
        "Look something up.",
        {
            "type": "object",
            "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
            "required": ["query"],
            "additionalProperties": False,
        },
        lambda ctx, args: args,
    )
    assert remote.validate({"query": "x", "limit": 3}) == {"query": "x", "limit": 3}
    with pytest.raises(ToolInputError) as raised:
        remote.validate({"limit": True, "extra": 1})
    message = str(raised.value)
    assert "'query' is required" in message
    assert "'extra' is not a parameter" in message
    assert "'limit' should be of type integer" in message


def test_close_runs_the_registered_closers_once() -> None:
    closed: list[str] = []
    with ToolRegistry() as registry:
        registry.on_close(lambda: closed.append("mcp"))
    registry.close()
    assert closed == ["mcp"]
