"""From a typed Python function to the JSON schema the model sees and the validator it obeys.

Pydantic does the type work: the signature becomes a `create_model` whose `extra="forbid"`
config rejects unknown arguments. The schema it emits is then trimmed to the subset both
providers accept: no titles, no `$ref`, and `X | None` written as plain `X` (an optional
argument is simply not required).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from messagedb_agent.tools.context import ToolContext
from messagedb_agent.tools.errors import ToolInputError

_SECTION = re.compile(r"^(\w+(?: \w+)?):\s*$")
_ARG_SECTIONS = {"Args", "Arguments", "Parameters"}
_ARG_LINE = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_COMBINATORS = ("anyOf", "oneOf", "allOf")
_FORBID_EXTRA = ConfigDict(extra="forbid")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """The first paragraph (the tool's description) and the Google-style `Args:` entries."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    paragraph: list[str] = []
    for line in lines:
        if not line.strip() or _SECTION.match(line):
            break
        paragraph.append(line.strip())
    params: dict[str, str] = {}
    in_args = False
    entry_indent: int | None = None
    current: str | None = None
    for line in lines:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            header = _SECTION.match(line)
            in_args = bool(header) and header is not None and header.group(1) in _ARG_SECTIONS
            entry_indent, current = None, None
            continue
        if not in_args:
            continue
        entry = _ARG_LINE.match(line.strip())
        if entry and (entry_indent is None or indent <= entry_indent):
            entry_indent, current = indent, entry.group(1)
            params[current] = entry.group(2).strip()
        elif current is not None:
            params[current] = f"{params[current]} {line.strip()}".strip()
    return " ".join(paragraph), params


def takes_context(fn: Callable[..., Any]) -> bool:
    """Whether the function's first parameter is the `ToolContext` the engine injects."""
    params = list(inspect.signature(fn).parameters.values())
    if not params:
        return False
    hints = get_type_hints(fn)
    return hints.get(params[0].name) is ToolContext


def arguments_model(
    fn: Callable[..., Any], name: str, descriptions: dict[str, str]
) -> type[BaseModel]:
    """A pydantic model of the function's model-facing parameters (the context left out)."""
    hints = get_type_hints(fn, include_extras=True)
    params = list(inspect.signature(fn).parameters.values())
    if takes_context(fn):
        params = params[1:]
    fields: dict[str, Any] = {}
    for param in params:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise TypeError(f"tool {name}: parameter {param.name!r} must be a plain named one")
        if param.name not in hints:
            raise TypeError(f"tool {name}: parameter {param.name!r} needs a type annotation")
        if hints[param.name] is ToolContext:
            raise TypeError(f"tool {name}: the ToolContext must be the first parameter")
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (
            hints[param.name],
            Field(default, description=descriptions.get(param.name)),
        )
    model: type[BaseModel] = create_model(f"{name}_arguments", __config__=_FORBID_EXTRA, **fields)
    return model


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema in the portable subset (see the module docstring)."""
    raw = model.model_json_schema()
    defs = raw.pop("$defs", {})
    schema: dict[str, Any] = _portable(raw, defs)
    schema.setdefault("properties", {})
    schema["additionalProperties"] = False
    return schema


def _portable(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_portable(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _portable(merged, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "default" and value is None:
            continue
        if key in ("properties", "$defs"):
            out[key] = {name: _portable(sub, defs) for name, sub in value.items()}
        else:
            out[key] = _portable(value, defs)
    for combinator in _COMBINATORS:
        options = out.get(combinator)
        if isinstance(options, list):
            kept = [o for o in options if o != {"type": "null"}]
            if len(kept) == 1 and len(kept) < len(options):
                del out[combinator]
                out = {**kept[0], **out}
    return out


def validate_arguments(
    tool_name: str, model: type[BaseModel], arguments: dict[str, Any]
) -> dict[str, Any]:
    """Validated keyword arguments, or a `ToolInputError` the model can act on."""
    try:
        parsed = model.model_validate(arguments)
    except ValidationError as exc:
        allowed = list(model.model_fields)
        problems = [_describe(error, allowed) for error in exc.errors(include_url=False)]
        raise ToolInputError(invalid_arguments_message(tool_name, problems)) from None
    return {field: getattr(parsed, field) for field in model.model_fields}


def invalid_arguments_message(tool_name: str, problems: list[str]) -> str:
    return f"Invalid arguments for {tool_name}: {'; '.join(problems)}. Fix them and call it again."


def _describe(error: Any, allowed: list[str]) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "arguments"
    kind = error["type"]
    if kind == "missing":
        return f"'{where}' is required"
    if kind == "extra_forbidden":
        names = ", ".join(allowed) if allowed else "none"
        return f"'{where}' is not a parameter (parameters: {names})"
    return f"'{where}': {error['msg']} (got {error.get('input')!r})"
