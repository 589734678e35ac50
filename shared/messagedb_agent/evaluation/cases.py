"""The eval set: requests people make, each with the tool calls the agent should answer with.

A set is a JSON Lines file. Its first line names it and carries its version, so every result
says which set (and which edition of it) it came from; each further line is one case. Cases
are validated on load, and `check_tools` holds them against the tools the agent really has,
so a renamed tool or argument breaks the set loudly instead of silently failing cases.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from messagedb_agent.llm.types import ToolSpec

DEFAULT_SET = "tool_choice_v1.jsonl"
NO_TOOL = "none"  # what `--only` calls the cases that expect no tool at all

Category = Literal["single", "chained", "no_tool"]
Scalar = str | int | float | bool

_STRICT = ConfigDict(extra="forbid", frozen=True)
M = TypeVar("M", bound=BaseModel)


class AnyOf(BaseModel):
    """Several spellings of one argument, any of which is right ("2**10" or "2^10")."""

    model_config = _STRICT

    any_of: tuple[Scalar, ...] = Field(min_length=1)


Expected = Scalar | AnyOf


class ExpectedCall(BaseModel):
    """One call the agent should make. `arguments` are the ones that matter; others the model
    adds are not held against it. An `optional` call may be made or skipped (looking the list
    up before acting on a task it already knows from the conversation)."""

    model_config = _STRICT

    tool: str = Field(min_length=1)
    arguments: dict[str, Expected] = Field(default_factory=dict)
    optional: bool = False


class SetupStep(BaseModel):
    """State a case needs before its request: a conversation turn run through the model, or
    a tool call made directly (deterministic whatever the model)."""

    model_config = _STRICT

    message: str | None = Field(default=None, min_length=1)
    tool: str | None = Field(default=None, min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_kind(self) -> SetupStep:
        if (self.message is None) == (self.tool is None):
            raise ValueError("a setup step is either a message or a tool call")
        if self.message is not None and self.arguments:
            raise ValueError("a setup message takes no arguments")
        return self


class EvalCase(BaseModel):
    model_config = _STRICT

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    request: str = Field(min_length=1)
    category: Category
    expected: tuple[ExpectedCall, ...] = ()
    setup: tuple[SetupStep, ...] = ()
    note: str | None = None

    @property
    def required(self) -> tuple[ExpectedCall, ...]:
        return tuple(call for call in self.expected if not call.optional)

    @property
    def tools(self) -> list[str]:
        """The tools this case expects, each once, in order (optional ones too)."""
        return list(dict.fromkeys(call.tool for call in self.expected))

    @model_validator(mode="after")
    def _category_fits(self) -> EvalCase:
        required = len(self.required)
        fits = {"no_tool": not self.expected, "single": required == 1, "chained": required >= 2}
        if not fits[self.category]:
            raise ValueError(
                f"category {self.category!r} does not fit {required} required call(s): no_tool "
                "expects none, single exactly one, chained two or more"
            )
        return self


class EvalSet(BaseModel):
    """A named, versioned list of cases."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1)
    version: int = Field(ge=1)
    description: str = ""
    cases: tuple[EvalCase, ...]
    source: str = ""

    @model_validator(mode="after")
    def _unique_ids(self) -> EvalSet:
        seen: set[str] = set()
        for case in self.cases:
            if case.id in seen:
                raise ValueError(f"case id {case.id!r} is used twice")
            seen.add(case.id)
        return self

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"

    def select(self, only: Sequence[str] = (), limit: int | None = None) -> list[EvalCase]:
        """The cases that expect any tool named in `only` (`none`: no tool), the first `limit`."""
        wanted = set(only)
        chosen = [
            case
            for case in self.cases
            if not wanted
            or wanted.intersection(case.tools)
            or (NO_TOOL in wanted and not case.expected)
        ]
        return chosen if limit is None else chosen[:limit]

    def tools(self) -> list[str]:
        """Every tool some case expects, in first-use order."""
        return list(dict.fromkeys(tool for case in self.cases for tool in case.tools))


class _Header(BaseModel):
    model_config = ConfigDict(extra="forbid")

    eval_set: str = Field(min_length=1)
    version: int = Field(ge=1)
    description: str = ""


def default_set_path() -> Path:
    return Path(str(resources.files("messagedb_agent.evaluation").joinpath(DEFAULT_SET)))


def load_eval_set(path: Path | str | None = None) -> EvalSet:
    """The set in `path` (the packaged one by default); `ValueError` names the bad line."""
    source = Path(path) if path is not None else default_set_path()
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read the eval set {source}: {exc.strerror or exc}") from None
    lines = [(number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise ValueError(f"{source} is empty: its first line names the set and its version")
    header = _parse(source, *lines[0], _Header)
    cases = [_parse(source, number, line, EvalCase) for number, line in lines[1:]]
    try:
        return EvalSet(
            name=header.eval_set,
            version=header.version,
            description=header.description,
            cases=tuple(cases),
            source=str(source),
        )
    except ValidationError as exc:
        raise ValueError(f"{source}: {_reason(exc)}") from None


def check_tools(eval_set: EvalSet, specs: Iterable[ToolSpec]) -> list[str]:
    """Every way the set disagrees with the agent's tools: unknown tools and arguments."""
    declared = {spec.name: spec for spec in specs}
    problems: list[str] = []
    for case in eval_set.cases:
        calls: Iterable[tuple[str, str, Iterable[str]]] = [
            ("expects", call.tool, call.arguments) for call in case.expected
        ] + [("sets up with", step.tool, step.arguments) for step in case.setup if step.tool]
        for verb, name, arguments in calls:
            spec = declared.get(name)
            if spec is None:
                problems.append(f"{case.id} {verb} {name}, which is not a tool")
                continue
            known = spec.parameters.get("properties", {})
            problems += [
                f"{case.id} {verb} {name}({key}=...), which has no argument {key!r}"
                for key in arguments
                if key not in known
            ]
    return problems


def _parse(source: Path, number: int, line: str, model: type[M]) -> M:
    try:
        return model.model_validate(json.loads(line))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source}:{number}: not JSON ({exc.msg})") from None
    except ValidationError as exc:
        raise ValueError(f"{source}:{number}: {_reason(exc)}") from None


def _reason(exc: ValidationError) -> str:
    problem = exc.errors()[0]
    where = ".".join(str(part) for part in problem["loc"])
    message = str(problem["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message
