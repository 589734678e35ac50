"""A thread view's folded state as a snapshot stores it: tagged, compact JSON, read back strictly.

What is stored is the folds' own state (`Progress` of the next-step fold, the LLM context's
accumulator, the thread's `SessionStarted`). Plain JSON values stay as they are; anything else
is an object with a `"$"` key naming what it is (a plain dict that has a `"$"` key of its own
is stored as a `"map"`, so it cannot be misread). Tuples, sets, datetimes and non-string keys
keep their types; events and tool calls are stored as their JSON and validated back by their
own classes.

What grows with the thread is stored in columns, not as tagged values, because it is most of a
snapshot and decoding it is most of reading one:
- the context's messages, one row each;
- the bookkeeping of every step (claims, attempts, answered steps, where each response and
  its calls sort), with each step id, a UUID repeated in several of them, written once in the
  state's string table and referred to by index.
Decoding checks types a column at a time (`set(map(type, column))`, which runs in C): a
snapshot is thousands of small values, and a Python call per value would cost more than
reading the events it stands for.

Decoding accepts exactly the classes and fields this code folds (a strict allowlist, never
arbitrary objects, whatever the database holds); anything else is a `SnapshotError`, and the
reader replays the thread instead.
"""

from __future__ import annotations

import base64
import dataclasses
import zlib
from collections.abc import Callable, Iterable
from datetime import datetime
from itertools import chain, islice
from operator import itemgetter
from typing import Any

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

from messagedb_agent.engine.view import ThreadView
from messagedb_agent.events.base import Event, Recorded
from messagedb_agent.events.system import SessionStarted
from messagedb_agent.events.values import TokenUsage, ToolCall
from messagedb_agent.llm.types import AssistantTurn, ContextSummary, ToolResult, UserTurn
from messagedb_agent.projections import llm_context
from messagedb_agent.projections.anchors import Anchors
from messagedb_agent.projections.progress import Delivery, Progress


class SnapshotError(ValueError):
    """A snapshot that cannot be this code's state: read the thread whole instead."""


_DATACLASSES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (Progress, Delivery, UserTurn, ContextSummary, AssistantTurn, ToolResult)
}
# Plain classes whose instance attributes are their state: name -> (class, its attributes).
_PLAIN: dict[str, tuple[type[Any], frozenset[str]]] = {
    "Anchors": (Anchors, frozenset(vars(Anchors()))),
    "ContextAcc": (llm_context._Acc, frozenset(vars(llm_context._Acc(0)))),
}
_PLAIN_TAGS = {cls: tag for tag, (cls, _) in _PLAIN.items()}
_MODELS: dict[str, type[BaseModel]] = {"ToolCall": ToolCall, "TokenUsage": TokenUsage}
_TOOL_CALLS = TypeAdapter(list[ToolCall])
# The LLM context's anchors, when equal to the next step's (always, for a thread this code
# wrote): stored once.
_SAME_ANCHORS = "sameAnchors"
_PARTS = ("started", "progress", "context")
_STATE_KEYS = frozenset({"strings", *_PARTS})

_INT = frozenset({int})
_LIST = frozenset({list})
_STR = frozenset({str})
_SCALAR = frozenset({str, int, float, bool, type(None)})
_SHAPES = frozenset({("u", 4), ("s", 4), ("a", 6), ("r", 7)})  # context rows: (kind, length)


def state_of(view: ThreadView) -> dict[str, Any]:
    """The view's folded state, as a snapshot stores it (see `ThreadView.folds`)."""
    folds = view.folds()
    _, progress, context = folds
    encoder = _Encoder()
    state = {part: encoder.encode(value) for part, value in zip(_PARTS, folds, strict=True)}
    if context.anchors == progress.anchors:  # both folds place responses the same way
        state["context"]["v"]["anchors"] = {"$": _SAME_ANCHORS}
    state["strings"] = list(encoder.strings)
    return state


def restore(
    state: dict[str, Any], tail: list[Recorded[Event]], tool_result_max_chars: int
) -> ThreadView:
    """The view a snapshot's `state` and the events from its position on (`tail[0]` is the
    event it was taken at) stand for."""
    if set(state) != _STATE_KEYS:
        raise SnapshotError("a snapshot's state does not have this code's parts")
    decoder = _Decoder(state["strings"])
    started, progress, context = (decoder.decode(state[part]) for part in _PARTS)
    if not (started is None or isinstance(started, SessionStarted)):
        raise SnapshotError("a snapshot's SessionStarted is not one")
    if not isinstance(progress, Progress) or not isinstance(context, llm_context._Acc):
        raise SnapshotError("a snapshot's folds are not this code's")
    anchors: Any = context.anchors
    if anchors == _SAME_ANCHORS and isinstance(progress.anchors, Anchors):
        context.anchors = progress.anchors.copy()
    elif not (isinstance(anchors, Anchors) and isinstance(progress.anchors, Anchors)):
        raise SnapshotError("a snapshot's anchors are not this code's")
    if context.tool_result_max_chars != tool_result_max_chars:
        raise SnapshotError("a snapshot folded with another tool result cap")
    return ThreadView.restored(started, progress, context, tail)


def encode(value: Any) -> dict[str, Any]:
    """One value on its own, with its string table (what `decode` reads back)."""
    encoder = _Encoder()
    encoded = encoder.encode(value)
    return {"strings": list(encoder.strings), "value": encoded}


def decode(encoded: Any) -> Any:
    if not isinstance(encoded, dict) or set(encoded) != {"strings", "value"}:
        raise SnapshotError("not an encoded value")
    return _Decoder(encoded["strings"]).decode(encoded["value"])


def pack(state: dict[str, Any]) -> dict[str, Any]:
    """The state as a snapshot message's data: its JSON, compressed (zlib, fastest level) and
    in base64. Compressed it is a third of the size, and PostgreSQL stores one string instead
    of parsing a large jsonb document, which makes writing a snapshot about three times and
    reading one about five times cheaper."""
    return {"zlib": base64.b64encode(zlib.compress(orjson.dumps(state), 1)).decode()}


def unpack(data: dict[str, Any]) -> dict[str, Any]:
    try:
        state = orjson.loads(zlib.decompress(base64.b64decode(data["zlib"], validate=True)))
    except (KeyError, TypeError, ValueError, zlib.error) as exc:
        raise SnapshotError(f"a snapshot's data does not unpack: {exc}") from exc
    if not isinstance(state, dict):
        raise SnapshotError("a snapshot's state is not an object")
    return state


# -- encoding -----------------------------------------------------------------------------------


class _Encoder:
    def __init__(self) -> None:
        self.strings: dict[str, int] = {}  # the string table, in order of first use

    def ids(self, values: Iterable[str]) -> list[int]:
        index = self.strings
        return [index.setdefault(value, len(index)) for value in values]

    def encode(self, value: Any) -> Any:
        if value is None or isinstance(value, bool | int | float | str):
            return value
        if isinstance(value, list):
            return [self.encode(item) for item in value]
        if isinstance(value, dict):
            if "$" not in value and all(isinstance(key, str) for key in value):
                return {key: self.encode(item) for key, item in value.items()}
            return {"$": "map", "v": [[self.encode(k), self.encode(v)] for k, v in value.items()]}
        if isinstance(value, tuple):
            return {"$": "tuple", "v": [self.encode(item) for item in value]}
        if isinstance(value, set | frozenset):
            return {"$": "set", "v": [self.encode(item) for item in sorted(value, key=repr)]}
        if isinstance(value, datetime):
            return {"$": "datetime", "v": value.isoformat()}
        if isinstance(value, Event):
            return {"$": "event", "t": value.type, "v": value.model_dump(mode="json")}
        name = type(value).__name__
        if isinstance(value, BaseModel) and _MODELS.get(name) is type(value):
            return {"$": name, "v": value.model_dump(mode="json")}
        if _DATACLASSES.get(name) is type(value):
            fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        elif type(value) in _PLAIN_TAGS:
            name, fields = _PLAIN_TAGS[type(value)], vars(value)
        else:
            raise SnapshotError(f"a snapshot cannot hold a {name}")
        return {"$": name, "v": {key: self.attribute(key, item) for key, item in fields.items()}}

    def attribute(self, key: str, value: Any) -> Any:
        """The attributes that grow with the thread, in columns (see the module)."""
        if key == "entries":  # the context's messages
            return {"$": "entries", "v": [_entry_row(entry) for entry in value]}
        if key == "_by_position":  # claim position -> (step, context position)
            claims = list(value.values())
            steps = self.ids(map(itemgetter(0), claims))
            return {"$": "claims", "p": list(value), "s": steps, "a": [c[1] for c in claims]}
        if key == "_alive":  # step -> attempt -> context position
            attempts = list(value.values())
            return {
                "$": "attempts",
                "s": self.ids(value),
                "n": [len(by_attempt) for by_attempt in attempts],
                "k": list(chain.from_iterable(attempts)),
                "a": list(chain.from_iterable(map(dict.values, attempts))),
            }
        if key == "_latest":  # step -> context position of its latest claim
            return {"$": "latest", "s": self.ids(value), "a": list(value.values())}
        if key == "answered_steps":
            return {"$": "steps", "s": self.ids(sorted(value))}
        if key == "responses":  # tool step -> sort key of its response
            return {"$": "keys", "s": self.ids(value), "k": [list(k) for k in value.values()]}
        if key == "call_order":  # (tool step, call id) -> index
            pairs = list(value)
            return {
                "$": "order",
                "s": self.ids(map(itemgetter(0), pairs)),
                "c": [pair[1] for pair in pairs],
                "n": list(value.values()),
            }
        return self.encode(value)


def _entry_row(entry: tuple[Any, ...]) -> list[Any]:
    """A context entry, `(sort key, message, tokens)`, as `[kind, key, tokens, fields...]`.
    Texts, tool arguments and results are JSON already and are stored as they are."""
    key, message, tokens = entry
    kind = type(message)
    if kind is ContextSummary:
        return ["s", list(key), tokens, message.text]
    if kind is UserTurn:
        return ["u", list(key), tokens, message.text]
    if kind is AssistantTurn:
        calls = [call.model_dump(mode="json") for call in message.tool_calls]
        return ["a", list(key), tokens, message.text, calls, message.thought_signatures]
    if kind is ToolResult:
        return [
            "r",
            list(key),
            tokens,
            message.tool_call_id,
            message.name,
            message.content,
            message.is_error,
        ]
    raise SnapshotError(f"a snapshot cannot hold a context message of type {kind.__name__}")


# -- decoding -----------------------------------------------------------------------------------


class _Decoder:
    def __init__(self, strings: Any) -> None:
        self.strings = _typed_list(strings, str)

    def ids(self, body: dict[str, Any], column: str) -> list[str]:
        """A column of string-table indices, as the strings."""
        indices = _typed_list(body.get(column), int)
        if indices and not 0 <= min(indices) <= max(indices) < len(self.strings):
            raise SnapshotError("a snapshot refers to a string it does not hold")
        return list(map(self.strings.__getitem__, indices))

    def decode(self, value: Any) -> Any:
        if isinstance(value, list):
            return value if _scalars(value) else [self.decode(item) for item in value]
        if not isinstance(value, dict):
            return value
        tag = value.get("$")
        if tag is None:
            if _scalars(value.values()):
                return value
            return {key: self.decode(item) for key, item in value.items()}
        columns = _COLUMNS.get(tag)
        if columns is not None:
            return columns(self, value)
        body: Any = value.get("v")
        if tag == "tuple":
            return tuple(self.items(body))
        if tag == "set":
            return _validated(lambda: set(self.items(body)))
        if tag == "map":
            return _validated(lambda: {self.decode(k): self.decode(v) for k, v in _items(body)})
        if tag == "datetime":
            return _validated(lambda: datetime.fromisoformat(body))
        if tag == "event":
            return _event(body, value)
        if tag == "entries":
            return _entries(body)
        if tag == _SAME_ANCHORS:
            return _SAME_ANCHORS
        if tag in _DATACLASSES:
            cls = _DATACLASSES[tag]
            fields = _fields(body, {f.name for f in dataclasses.fields(cls)}, tag)
            return _validated(lambda: cls(**{k: self.decode(v) for k, v in fields.items()}))
        if tag in _PLAIN:
            cls, attributes = _PLAIN[tag]
            fields = _fields(body, attributes, tag)
            instance = object.__new__(cls)
            instance.__dict__.update({key: self.decode(item) for key, item in fields.items()})
            if tag == "ContextAcc" and not isinstance(instance.__dict__["entries"], list):
                raise SnapshotError("a snapshot's context entries are not a list")
            return instance
        if tag in _MODELS:
            return _validated(lambda: _MODELS[tag].model_validate(body))
        raise SnapshotError(f"a snapshot holds an unknown {tag!r}")

    def items(self, body: Any) -> list[Any]:
        items = _items(body)
        return items if _scalars(items) else list(map(self.decode, items))

    # the columns (see `_Encoder.attribute`); each column is checked whole

    def claims(self, body: dict[str, Any]) -> dict[int, tuple[str, int]]:
        positions, ats = _typed_list(body.get("p"), int), _typed_list(body.get("a"), int)
        steps = self.ids(body, "s")
        return dict(_zipped(positions, _zipped(steps, ats)))

    def attempts(self, body: dict[str, Any]) -> dict[str, dict[int, int]]:
        steps, counts = self.ids(body, "s"), _typed_list(body.get("n"), int)
        numbers, ats = _typed_list(body.get("k"), int), _typed_list(body.get("a"), int)
        if len(steps) != len(counts) or sum(counts) != len(numbers) or min(counts, default=0) < 0:
            raise SnapshotError("a snapshot's attempts do not add up")
        pairs = iter(_zipped(numbers, ats))
        return {step: dict(islice(pairs, count)) for step, count in zip(steps, counts, strict=True)}

    def latest(self, body: dict[str, Any]) -> dict[str, int]:
        return dict(_zipped(self.ids(body, "s"), _typed_list(body.get("a"), int)))

    def steps(self, body: dict[str, Any]) -> set[str]:
        return set(self.ids(body, "s"))

    def keys(self, body: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        return dict(_zipped(self.ids(body, "s"), _sort_keys(_typed_list(body.get("k"), list))))

    def order(self, body: dict[str, Any]) -> dict[tuple[str, str], int]:
        steps, calls = self.ids(body, "s"), _typed_list(body.get("c"), str)
        return dict(_zipped(_zipped(steps, calls), _typed_list(body.get("n"), int)))


_COLUMNS: dict[str, Callable[[_Decoder, dict[str, Any]], Any]] = {
    "claims": _Decoder.claims,
    "attempts": _Decoder.attempts,
    "latest": _Decoder.latest,
    "steps": _Decoder.steps,
    "keys": _Decoder.keys,
    "order": _Decoder.order,
}


def _entries(body: Any) -> list[tuple[Any, ...]]:
    rows = _items(body)
    if not set(map(type, rows)) <= _LIST:
        raise SnapshotError("a context entry is not a row")
    try:
        if not set(zip(map(itemgetter(0), rows), map(len, rows), strict=True)) <= _SHAPES:
            raise SnapshotError("a context entry of unknown kind or shape")
        keys = _sort_keys(_column(rows, 1, list))
        tokens = _column(rows, 2, int)
        texts = _column(rows, 3, str)
        assistant = [row for row in rows if row[0] == "a"]
        results = [row for row in rows if row[0] == "r"]
        # every tool call at once: one validation instead of one per call
        calls = iter(
            _TOOL_CALLS.validate_python(list(chain.from_iterable(_column(assistant, 4, list))))
        )
        _column(assistant, 5, dict)
        signatures = chain.from_iterable(map(dict.items, (row[5] for row in assistant)))
        if not set(map(type, chain.from_iterable(signatures))) <= _STR:
            raise SnapshotError("a context entry's thought signatures are not strings")
        _column(results, 4, str)
        _column(results, 6, bool)
        messages: list[Any] = []
        for row, text in zip(rows, texts, strict=True):
            kind = row[0]
            if kind == "u":
                messages.append(UserTurn(text))
            elif kind == "a":
                messages.append(AssistantTurn(text, tuple(islice(calls, len(row[4]))), row[5]))
            elif kind == "r":
                messages.append(ToolResult(text, row[4], row[5], row[6]))
            else:
                messages.append(ContextSummary(text))
    except (IndexError, TypeError, ValidationError) as exc:
        raise SnapshotError(f"a context entry does not have this code's shape: {exc}") from exc
    return list(zip(keys, messages, tokens, strict=True))


def _column(rows: list[list[Any]], index: int, kind: type) -> list[Any]:
    return _typed_list(list(map(itemgetter(index), rows)), kind)


def _typed_list(values: Any, kind: type) -> list[Any]:
    if type(values) is not list or not set(map(type, values)) <= {kind}:
        raise SnapshotError(f"a snapshot's column is not a list of {kind.__name__}")
    return values


def _sort_keys(values: list[Any]) -> list[tuple[int, ...]]:
    """Sort keys: lists of integers, as tuples."""
    if not set(map(type, chain.from_iterable(values))) <= _INT:
        raise SnapshotError("a snapshot's sort key is not a list of integers")
    return list(map(tuple, values))


def _zipped(first: list[Any], second: list[Any]) -> list[tuple[Any, Any]]:
    if len(first) != len(second):
        raise SnapshotError("a snapshot's columns differ in length")
    return list(zip(first, second, strict=True))


def _scalars(values: Iterable[Any]) -> bool:
    """Whether every value is a JSON scalar, which decodes to itself."""
    return set(map(type, values)) <= _SCALAR


def _items(body: Any) -> list[Any]:
    if not isinstance(body, list):
        raise SnapshotError("a snapshot's collection is not a list")
    return body


def _fields(body: Any, expected: set[str] | frozenset[str], tag: str) -> dict[str, Any]:
    if not isinstance(body, dict) or set(body) != expected:
        raise SnapshotError(f"a snapshot's {tag} does not have this code's fields")
    return body


def _validated(make: Callable[[], Any]) -> Any:
    try:
        return make()
    except (ValidationError, ValueError, TypeError) as exc:
        raise SnapshotError(str(exc).splitlines()[0]) from exc


def _event(body: Any, whole: dict[str, Any]) -> Event:
    cls = Event.registry.get(str(whole.get("t")))
    if cls is None:
        raise SnapshotError(f"a snapshot holds an event of unknown type {whole.get('t')!r}")
    event: Event = _validated(lambda: cls.model_validate(body))
    return event
