"""Scoring a case: did the agent call the right tools, in order, with the arguments that matter?

Two views, both computed here without any service:

* **pass/fail** per case. The tool names must follow the expected calls in order (an optional
  call may be made or skipped; any other extra call fails the case), and every expected
  argument must match. A string matches when, case-folded and with whitespace removed, the
  expected text occurs in the actual one ("milk" matches "Buy  Milk"): people and models
  phrase titles freely, and what matters is that the task is about milk. A number matches only
  the same number (a numeric string such as "3" counts, as the tools accept it); a boolean only
  itself; `any_of` lists equally right spellings.
* **Vertex-style scores**, as Google's Gen AI evaluation service defines its tool-use metrics
  (https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/evaluation-api): a
  prediction and a reference, each a JSON string `{"content": ..., "tool_calls": [{"name":
  ..., "arguments": {...}}]}`, scored `tool_call_valid` (0/1), `tool_name_match` (0/1),
  `tool_parameter_key_match` and `tool_parameter_kv_match` (0..1, the share of the reference's
  parameters whose name, or name and value, the prediction matches). The page defines the
  scores, not every corner; where it is silent, this module decides as its docstrings say, so
  these figures can be compared with the service's own (`vertex.py`) rather than assumed equal.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from messagedb_agent.evaluation.cases import AnyOf, Expected, ExpectedCall

TOOL_CALL_VALID = "tool_call_valid"
TOOL_NAME_MATCH = "tool_name_match"
TOOL_PARAMETER_KEY_MATCH = "tool_parameter_key_match"
TOOL_PARAMETER_KV_MATCH = "tool_parameter_kv_match"
VERTEX_METRICS = (
    TOOL_CALL_VALID,
    TOOL_NAME_MATCH,
    TOOL_PARAMETER_KEY_MATCH,
    TOOL_PARAMETER_KV_MATCH,
)

_EDGE_PUNCTUATION = "\"'`“”‘’.,!?;:"


@dataclass(frozen=True, slots=True)
class ActualCall:
    """A call the model made, and what became of it (`ok` is None when no result was read)."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    ok: bool | None = None
    error: str | None = None

    def describe(self) -> str:
        return describe_call(self.name, self.arguments)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A case's outcome. `tools_right`: the names alone were right; `reference`: the expected
    calls the actual ones were held against (the optional ones the model made included)."""

    passed: bool
    tools_right: bool
    problems: tuple[str, ...]
    reference: tuple[ExpectedCall, ...]


# -- pass/fail ---------------------------------------------------------------------------------


def normalise(text: str) -> str:
    """Case-folded, compatibility-normalised, without whitespace or quotes around it."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(folded.split()).strip(_EDGE_PUNCTUATION)


def value_matches(expected: Expected, actual: Any) -> bool:
    if isinstance(expected, AnyOf):
        return any(value_matches(alternative, actual) for alternative in expected.any_of)
    if isinstance(expected, bool):
        return actual is expected
    if isinstance(expected, int | float):
        number = _number(actual)
        return number is not None and number == expected
    if isinstance(actual, bool) or not isinstance(actual, str | int | float):
        return False
    return normalise(expected) in normalise(str(actual))


def judge(expected: Sequence[ExpectedCall], actual: Sequence[ActualCall]) -> Verdict:
    followed = _follow(tuple(expected), tuple(call.name for call in actual))
    if followed is None:
        required = tuple(call for call in expected if not call.optional)
        problem = (
            f"expected {describe_expected(expected)}; got {describe_actual(actual)}"
            if expected or actual
            else "no calls"
        )
        return Verdict(False, False, (problem,), required)
    problems: list[str] = []
    for want, got in zip(followed, actual, strict=True):
        for key, value in want.arguments.items():
            if key not in got.arguments:
                problems.append(f"{got.name}: no {key} argument (expected {_shown(value)})")
            elif not value_matches(value, got.arguments[key]):
                problems.append(
                    f"{got.name}: {key}={got.arguments[key]!r}, expected {_shown(value)}"
                )
    return Verdict(not problems, True, tuple(problems), followed)


def _follow(
    expected: tuple[ExpectedCall, ...], names: tuple[str, ...]
) -> tuple[ExpectedCall, ...] | None:
    """The expected calls that `names` makes, in order, or None when they cannot be matched."""
    if not expected:
        return () if not names else None
    head, rest = expected[0], expected[1:]
    if names and names[0] == head.tool:
        tail = _follow(rest, names[1:])
        if tail is not None:
            return (head, *tail)
    return _follow(rest, names) if head.optional else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


# -- how calls read in a report ------------------------------------------------------------------


def describe_call(name: str, arguments: Mapping[str, Any]) -> str:
    return f"{name}({', '.join(f'{key}={value!r}' for key, value in arguments.items())})"


def describe_expected(calls: Sequence[ExpectedCall]) -> str:
    if not calls:
        return "no tool call"
    parts = []
    for call in calls:
        shown = f"{call.tool}({', '.join(f'{k}~{_shown(v)}' for k, v in call.arguments.items())})"
        parts.append(f"[{shown}]" if call.optional else shown)
    return " → ".join(parts)


def describe_actual(calls: Sequence[ActualCall]) -> str:
    return " → ".join(call.describe() for call in calls) if calls else "no tool call"


def _shown(value: Expected) -> str:
    if isinstance(value, AnyOf):
        return " or ".join(repr(alternative) for alternative in value.any_of)
    return repr(value)


# -- Vertex-style tool-use metrics ---------------------------------------------------------------


def prediction_json(reply: str, calls: Sequence[ActualCall]) -> str:
    """The model's turn in the evaluation service's format: its text and every call it made."""
    return json.dumps(
        {
            "content": reply,
            "tool_calls": [{"name": c.name, "arguments": dict(c.arguments)} for c in calls],
        },
        ensure_ascii=False,
    )


def reference_json(calls: Sequence[ExpectedCall]) -> str:
    """The expected calls in the same format; an `any_of` argument gives its first spelling."""
    return json.dumps(
        {
            "content": "",
            "tool_calls": [
                {
                    "name": call.tool,
                    "arguments": {
                        key: value.any_of[0] if isinstance(value, AnyOf) else value
                        for key, value in call.arguments.items()
                    },
                }
                for call in calls
            ],
        },
        ensure_ascii=False,
    )


def tool_call_valid(prediction: str, reference: str) -> float:
    """1 when the prediction is a well-formed tool-call message: JSON with a `tool_calls` list
    whose every entry has a non-empty string `name` and an object `arguments` (`content`, when
    present, a string), and which holds at least one call when the reference expects one.
    A prediction of no call where the reference expects none is valid."""
    calls = _calls(prediction)
    if calls is None:
        return 0.0
    return 0.0 if _reference_calls(reference) and not calls else 1.0


def tool_name_match(prediction: str, reference: str) -> float:
    """1 when the prediction's call names are the reference's, in the same order."""
    calls = _calls(prediction)
    if calls is None:
        return 0.0
    wanted = [name for name, _ in _reference_calls(reference)]
    return 1.0 if [name for name, _ in calls] == wanted else 0.0


def tool_parameter_key_match(prediction: str, reference: str) -> float:
    """The share of the reference's parameters whose name the prediction's call at the same
    position also has; a reference without parameters scores as `tool_call_valid`."""
    return _parameter_share(prediction, reference, lambda want, got: True)


def tool_parameter_kv_match(prediction: str, reference: str, *, strict: bool = False) -> float:
    """As `tool_parameter_key_match`, but the value must match too: exactly with `strict`
    (the service's `use_strict_string_match`), else strings compare case- and
    whitespace-insensitively and numbers by value ("2" matches 2)."""

    def same(want: Any, got: Any) -> bool:
        if strict:
            return bool(want == got) and type(want) is type(got)
        if isinstance(want, bool) or isinstance(got, bool):
            return want is got
        numbers = _number(want), _number(got)
        if None not in numbers:
            return numbers[0] == numbers[1]
        if isinstance(want, str) and isinstance(got, str):
            return normalise(want) == normalise(got)
        return bool(want == got)

    return _parameter_share(prediction, reference, same)


def vertex_scores(prediction: str, reference: str, *, strict: bool = False) -> dict[str, float]:
    return {
        TOOL_CALL_VALID: tool_call_valid(prediction, reference),
        TOOL_NAME_MATCH: tool_name_match(prediction, reference),
        TOOL_PARAMETER_KEY_MATCH: tool_parameter_key_match(prediction, reference),
        TOOL_PARAMETER_KV_MATCH: tool_parameter_kv_match(prediction, reference, strict=strict),
    }


def mean_scores(scores: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Each metric's mean over the instances that have it."""
    columns: dict[str, list[float]] = {}
    for row in scores:
        for metric, value in row.items():
            columns.setdefault(metric, []).append(value)
    return {metric: sum(values) / len(values) for metric, values in columns.items()}


def _parameter_share(prediction: str, reference: str, same: Callable[[Any, Any], bool]) -> float:
    calls = _calls(prediction)
    if calls is None:
        return 0.0
    wanted = _reference_calls(reference)
    total = sum(len(arguments) for _, arguments in wanted)
    if total == 0:
        return tool_call_valid(prediction, reference)
    matched = 0
    for index, (_, arguments) in enumerate(wanted):
        got = calls[index][1] if index < len(calls) else {}
        matched += sum(
            1 for key, value in arguments.items() if key in got and same(value, got[key])
        )
    return matched / total


def _calls(message: str) -> list[tuple[str, dict[str, Any]]] | None:
    """The (name, arguments) of each call in a tool-call message, or None if malformed."""
    try:
        parsed = json.loads(message)
    except (TypeError, ValueError):
        return None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("content", ""), str):
        return None
    raw = parsed.get("tool_calls")
    if not isinstance(raw, list):
        return None
    calls: list[tuple[str, dict[str, Any]]] = []
    for item in raw:
        if not isinstance(item, dict):
            return None
        name, arguments = item.get("name"), item.get("arguments", {})
        if not isinstance(name, str) or not name or not isinstance(arguments, dict):
            return None
        calls.append((name, arguments))
    return calls


def _reference_calls(reference: str) -> list[tuple[str, dict[str, Any]]]:
    calls = _calls(reference)
    if calls is None:
        raise ValueError(f"the reference is not a tool-call message: {reference[:200]!r}")
    return calls
