"""Tools the model may call: declared with `@tool`, collected in a `ToolRegistry`.

A tool is a typed function; its hints and docstring are its schema. A first parameter
annotated `ToolContext` is supplied by the engine and never appears in the schema, which is
how a tool learns the acting user without the model having any say in it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, TypeVar, overload

from messagedb_agent.llm.types import ToolSpec
from messagedb_agent.tools.context import ToolContext
from messagedb_agent.tools.errors import ToolInputError
from messagedb_agent.tools.schema import (
    arguments_model,
    invalid_arguments_message,
    json_schema,
    parse_docstring,
    takes_context,
    validate_arguments,
)

F = TypeVar("F", bound=Callable[..., Any])

Handler = Callable[[ToolContext, dict[str, Any]], Any]
Validator = Callable[[dict[str, Any]], dict[str, Any]]

# Argument names that would let the model pick whose data a tool touches.
_USER_NAMES = frozenset({"user", "userid", "username", "owner", "ownerid", "actinguser", "uid"})
_TOOL_ATTRIBUTE = "__tool__"
_JSON_TYPES: Mapping[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def is_user_argument(name: str) -> bool:
    """Whether an argument name claims to say who the user is (`user_id`, `owner`, ...)."""
    return name.lower().replace("_", "").replace("-", "") in _USER_NAMES


@dataclass(frozen=True)
class Tool:
    """One callable tool: what the model is shown, how arguments are checked, what runs."""

    name: str
    description: str
    parameters: Mapping[str, Any]
    handler: Handler = field(repr=False)
    validator: Validator = field(repr=False)
    approval: bool = False  # each call waits for the thread owner's approval before it runs
    # running a call twice has the effect of running it once (it derives its writes from
    # ToolContext.idempotency_key): a call whose worker went silent may be run again
    idempotent: bool = False

    def __post_init__(self) -> None:
        claimed = [p for p in self.parameters.get("properties", {}) if is_user_argument(p)]
        if claimed:
            raise ValueError(
                f"tool {self.name}: parameter(s) {', '.join(claimed)} would let the model choose"
                " the user; take the user from ToolContext.owner instead"
            )

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.description, dict(self.parameters))

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The arguments ready to run with; raises `ToolInputError` naming every problem."""
        return self.validator(arguments)

    def run(self, ctx: ToolContext, arguments: dict[str, Any]) -> Any:
        """Run with already validated arguments."""
        return self.handler(ctx, arguments)

    @classmethod
    def from_function(
        cls,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        approval: bool = False,
        idempotent: bool = False,
    ) -> Tool:
        tool_name = name or fn.__name__
        summary, descriptions = parse_docstring(fn.__doc__)
        model = arguments_model(fn, tool_name, descriptions)
        parameters = json_schema(model)
        with_context = takes_context(fn)

        def handler(ctx: ToolContext, arguments: dict[str, Any]) -> Any:
            return fn(ctx, **arguments) if with_context else fn(**arguments)

        def validator(arguments: dict[str, Any]) -> dict[str, Any]:
            return validate_arguments(tool_name, model, arguments)

        return cls(
            tool_name,
            description or summary or tool_name,
            parameters,
            handler,
            validator,
            approval=approval,
            idempotent=idempotent,
        )

    @classmethod
    def from_schema(
        cls,
        name: str,
        description: str,
        parameters: Mapping[str, Any],
        handler: Handler,
        *,
        idempotent: bool = False,
    ) -> Tool:
        """A tool whose schema comes from elsewhere (an MCP server); checked shallowly here,
        since the remote side validates in full."""

        def validator(arguments: dict[str, Any]) -> dict[str, Any]:
            return _check_against_schema(name, parameters, arguments)

        return cls(name, description, parameters, handler, validator, idempotent=idempotent)


@overload
def tool(fn: F, /) -> F: ...
@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    approval: bool = False,
    idempotent: bool = False,
) -> Callable[[F], F]: ...
def tool(
    fn: F | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    approval: bool = False,
    idempotent: bool = False,
) -> F | Callable[[F], F]:
    """Declare a function as a tool; the function itself stays directly callable.

    `approval=True`: every call waits for the thread owner's approval before it runs (as for
    the tools `TOOLS_REQUIRING_APPROVAL` names). `idempotent=True`: running a call twice has the
    effect of running it once, so a call whose worker went silent is run again; otherwise it is
    reported in doubt, never run twice."""

    def declare(func: F) -> F:
        declared = Tool.from_function(
            func, name=name, description=description, approval=approval, idempotent=idempotent
        )
        setattr(func, _TOOL_ATTRIBUTE, declared)
        return func

    return declare(fn) if fn is not None else declare


def declared_tool(value: object) -> Tool | None:
    """The `Tool` a `@tool` function carries, or None for anything else."""
    declared = getattr(value, _TOOL_ATTRIBUTE, None)
    return declared if isinstance(declared, Tool) else None


def tool_of(fn_or_tool: Tool | Callable[..., Any]) -> Tool:
    """The `Tool` a declared function carries (or one made for a plain function)."""
    if isinstance(fn_or_tool, Tool):
        return fn_or_tool
    declared = getattr(fn_or_tool, _TOOL_ATTRIBUTE, None)
    return declared if isinstance(declared, Tool) else Tool.from_function(fn_or_tool)


class ToolRegistry:
    """The tools offered to the model, by name, in registration order.

    It can also own resources its tools need (an MCP connection): `close()` releases them.
    """

    def __init__(self, tools: Iterable[Tool | Callable[..., Any]] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        self._closers: list[Callable[[], None]] = []
        for item in tools:
            self.register(item)

    def register(self, fn_or_tool: Tool | Callable[..., Any]) -> Tool:
        declared = tool_of(fn_or_tool)
        if declared.name in self._tools:
            raise ValueError(f"a tool named {declared.name!r} is already registered")
        self._tools[declared.name] = declared
        return declared

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return list(self._tools)

    def specs(self) -> list[ToolSpec]:
        return [declared.spec for declared in self._tools.values()]

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(list(self._tools.values()))

    def __len__(self) -> int:
        return len(self._tools)

    def on_close(self, closer: Callable[[], None]) -> None:
        self._closers.append(closer)

    def close(self) -> None:
        closers, self._closers = self._closers, []
        for closer in reversed(closers):
            closer()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _check_against_schema(
    name: str, parameters: Mapping[str, Any], arguments: dict[str, Any]
) -> dict[str, Any]:
    properties: Mapping[str, Any] = parameters.get("properties", {})
    problems = [
        f"'{key}' is required" for key in parameters.get("required", []) if key not in arguments
    ]
    if parameters.get("additionalProperties") is False:
        allowed = ", ".join(properties) or "none"
        problems += [
            f"'{key}' is not a parameter (parameters: {allowed})"
            for key in arguments
            if key not in properties
        ]
    for key, value in arguments.items():
        expected = properties.get(key, {}).get("type")
        names = [expected] if isinstance(expected, str) else expected or []
        kinds = tuple(kind for n in names for kind in _JSON_TYPES.get(n, (object,)))
        wrong_bool = isinstance(value, bool) and bool not in kinds and object not in kinds
        if kinds and (not isinstance(value, kinds) or wrong_bool):
            problems.append(f"'{key}' should be of type {' or '.join(names)} (got {value!r})")
    if problems:
        raise ToolInputError(invalid_arguments_message(name, problems))
    return dict(arguments)
