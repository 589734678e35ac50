"""Snapshots of a thread's view: a cold instance reads one message and the tail, not the thread.

Eventide's entity snapshot, for the `ThreadView`: every `EngineConfig.snapshot_interval` events
the engine writes the view's folded state as a `SnapshotRecorded` message to the thread's
snapshot stream, `<category>:snapshot-<id>` (`thread_0a:snapshot-<uuid>` for the thread
`thread_0a-<uuid>`: a category type, so it is neither in the thread nor in the category the
relay reads). A worker that does not hold the thread in its `ViewCache` reads the last snapshot
and the events from its position on, and folds only those.

The snapshot is a cache, never a source of truth. It is used only when
- it decodes, into exactly the classes and fields this code folds (a strict allowlist: never
  arbitrary objects, whatever the database holds);
- its `fingerprint` is this code's: a hash of the source of every module the folds depend on,
  and of the folds' settings, so a deploy that changes a projection ignores older snapshots
  instead of trusting state its code would not have produced;
- the thread still has the event it was taken at (same position, same id).
Anything else (missing, stale, unreadable, older code) falls back to the full replay, which
gives the same view; the tests hold snapshot + tail equal to the full replay for every shape
of thread they generate.

What is stored is the folds' own state (`Progress` of the next-step fold, the LLM context's
accumulator, the thread's `SessionStarted`), encoded as tagged JSON: tuples, sets, datetimes
and non-string keys keep their types, events and tool calls are stored as their JSON and
validated back by their own classes; what grows with the thread (the context's messages, the
claims' anchors) is stored as plain rows. The JSON is compressed (`pack`).

Writing it never waits for the WAL flush (`synchronous_commit=off`, set in the snapshot's own
transaction only): a crash can lose the latest snapshot, which costs one longer replay, never
a wrong one. A snapshot's id is derived from the thread and position, so two workers that
snapshot the same position write it once.

The interval: 100 events. A turn of the usual shape (a message, a few tool round-trips)
appends about 20 events, so a thread is snapshotted every few turns; a cold read then folds at
most 100 events after one snapshot, whatever the thread's length, while snapshot writes add
one lazily committed message per 100 events. The state is mostly the model's context, which
compaction bounds, so a snapshot stays small next to the events it stands for.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import importlib
import logging
import zlib
from collections.abc import Callable, Iterable
from datetime import datetime
from itertools import chain, islice
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

from messagedb_agent.engine.view import ThreadView
from messagedb_agent.events import ids
from messagedb_agent.events.base import Event, Metadata, Recorded
from messagedb_agent.events.mapper import from_message, to_message
from messagedb_agent.events.snapshot import SnapshotRecorded
from messagedb_agent.events.system import SessionStarted
from messagedb_agent.events.values import TokenUsage, ToolCall
from messagedb_agent.llm.types import AssistantTurn, ContextSummary, ToolResult, UserTurn
from messagedb_agent.projections import llm_context
from messagedb_agent.projections.anchors import Anchors
from messagedb_agent.projections.progress import Delivery, Progress
from messagedb_agent.store import stream_name as names
from messagedb_agent.store.errors import DuplicateMessageError, StoreError
from messagedb_agent.threads.reading import read_thread

if TYPE_CHECKING:
    from messagedb_agent.store.client import MessageStore

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 100
SNAPSHOT_TYPE = "snapshot"  # the category type of snapshot streams, as Eventide names it

# The modules whose code decides what a fold holds: a change to any of them changes the
# fingerprint, and with it which snapshots are read.
_FOLD_MODULES = (
    "messagedb_agent.engine.snapshot",
    "messagedb_agent.engine.view",
    "messagedb_agent.projections.anchors",
    "messagedb_agent.projections.llm_context",
    "messagedb_agent.projections.next_step",
    "messagedb_agent.projections.progress",
    "messagedb_agent.llm.prompts",
    "messagedb_agent.llm.types",
    "messagedb_agent.events.agent",
    "messagedb_agent.events.base",
    "messagedb_agent.events.delivery",
    "messagedb_agent.events.ids",
    "messagedb_agent.events.mapper",
    "messagedb_agent.events.system",
    "messagedb_agent.events.tool",
    "messagedb_agent.events.user",
    "messagedb_agent.events.values",
)


class SnapshotError(ValueError):
    """A snapshot that cannot be this code's state: read the thread whole instead."""


def snapshot_stream(stream: str) -> str:
    """`thread_0a:snapshot-<uuid>` for `thread_0a-<uuid>`: the stream's category, typed."""
    parsed = names.parse(stream)
    if parsed.is_category or SNAPSHOT_TYPE in parsed.types:
        raise names.InvalidStreamName(f"{stream!r} cannot have a snapshot stream")
    return names.build(parsed.category, *parsed.ids, types=(*parsed.types, SNAPSHOT_TYPE))


_code_hash: str | None = None


def code_fingerprint() -> str:
    """A hash of the source of the modules the folds depend on (computed once)."""
    global _code_hash
    if _code_hash is None:
        digest = hashlib.sha256()
        for name in _FOLD_MODULES:
            module = importlib.import_module(name)
            source = getattr(module, "__file__", None)
            if source is None:
                raise SnapshotError(f"{name} has no source file to fingerprint")
            digest.update(name.encode())
            digest.update(Path(source).read_bytes())
        _code_hash = digest.hexdigest()[:32]
    return _code_hash


# -- the state, as tagged JSON ------------------------------------------------------------------
#
# Plain JSON values stay as they are. Anything else is an object with a "$" key naming what it
# is; a plain dict that has a "$" key of its own is stored as a "map" so it cannot be misread.

_DATACLASSES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (Progress, Delivery, UserTurn, ContextSummary, AssistantTurn, ToolResult)
}
# Plain classes whose instance attributes are their state: name -> (class, its attributes).
_PLAIN: dict[str, tuple[type[Any], frozenset[str]]] = {
    "Anchors": (Anchors, frozenset(vars(Anchors()))),
    "ContextAcc": (llm_context._Acc, frozenset(vars(llm_context._Acc(0)))),
}
_MODELS: dict[str, type[BaseModel]] = {"ToolCall": ToolCall, "TokenUsage": TokenUsage}


def encode(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [encode(item) for item in value]
    if isinstance(value, dict):
        if "$" not in value and all(isinstance(key, str) for key in value):
            return {key: encode(item) for key, item in value.items()}
        return {"$": "map", "v": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"$": "tuple", "v": [encode(item) for item in value]}
    if isinstance(value, set | frozenset):
        return {"$": "set", "v": [encode(item) for item in sorted(value, key=repr)]}
    if isinstance(value, datetime):
        return {"$": "datetime", "v": value.isoformat()}
    if isinstance(value, Event):
        return {"$": "event", "t": value.type, "v": value.model_dump(mode="json")}
    name = type(value).__name__
    if isinstance(value, BaseModel) and _MODELS.get(name) is type(value):
        return {"$": name, "v": value.model_dump(mode="json")}
    if _DATACLASSES.get(name) is type(value):
        fields = dataclasses.fields(value)
        return {"$": name, "v": {f.name: encode(getattr(value, f.name)) for f in fields}}
    for tag, (cls, _) in _PLAIN.items():
        if type(value) is cls:
            return {
                "$": tag,
                "v": {key: _encode_attribute(key, item) for key, item in vars(value).items()},
            }
    raise SnapshotError(f"a snapshot cannot hold a {name}")


def _encode_attribute(key: str, value: Any) -> Any:
    """The attributes that grow with the thread are stored as rows, not as tagged values:
    they are most of a snapshot, and decoding them is most of reading one."""
    if key == "entries":  # the context's messages
        return {"$": "entries", "v": [_encode_entry(entry) for entry in value]}
    if key == "_by_position":  # claim position -> (step, context position)
        return {"$": "claims", "v": [[p, step, at] for p, (step, at) in value.items()]}
    if key == "_alive":  # step -> attempt -> context position
        rows = [[step, [[n, at] for n, at in attempts.items()]] for step, attempts in value.items()]
        return {"$": "attempts", "v": rows}
    if key == "responses":  # tool step -> sort key of its response
        return {"$": "keys", "v": [[step, list(sort_key)] for step, sort_key in value.items()]}
    if key == "call_order":  # (tool step, call id) -> index
        return {"$": "order", "v": [[step, call, n] for (step, call), n in value.items()]}
    return encode(value)


# Decoding checks types a column at a time (`set(map(type, column))`), which runs in C: a
# snapshot is thousands of small rows, and a Python call per value would cost more than
# reading the events it stands for.


def _rows_of(body: Any, width: int) -> list[list[Any]]:
    rows = _items(body)
    if not set(map(type, rows)) <= _LIST or not set(map(len, rows)) <= {width}:
        raise SnapshotError(f"a snapshot's rows are not lists of {width}")
    return rows


def _column(rows: list[list[Any]], index: int, kind: type) -> list[Any]:
    values = list(map(itemgetter(index), rows))
    if not set(map(type, values)) <= {kind}:
        raise SnapshotError(f"a snapshot's column holds something other than {kind.__name__}")
    return values


def _keys(values: list[Any]) -> list[tuple[int, ...]]:
    """Sort keys: lists of integers, as tuples."""
    if (
        not set(map(type, values)) <= _LIST
        or not set(map(type, chain.from_iterable(values))) <= _INT
    ):
        raise SnapshotError("a snapshot's sort key is not a list of integers")
    return list(map(tuple, values))


def _claims(body: Any, _: Any) -> dict[int, tuple[str, int]]:
    rows = _rows_of(body, 3)
    return dict(
        zip(
            _column(rows, 0, int),
            zip(_column(rows, 1, str), _column(rows, 2, int), strict=True),
            strict=True,
        )
    )


def _attempts(body: Any, _: Any) -> dict[str, dict[int, int]]:
    rows = _rows_of(body, 2)
    attempts = _column(rows, 1, list)
    pairs = _rows_of(list(chain.from_iterable(attempts)), 2)
    _column(pairs, 0, int)
    _column(pairs, 1, int)
    return dict(zip(_column(rows, 0, str), map(dict, attempts), strict=True))


def _sort_keys(body: Any, _: Any) -> dict[str, tuple[int, ...]]:
    rows = _rows_of(body, 2)
    return dict(zip(_column(rows, 0, str), _keys(_column(rows, 1, list)), strict=True))


def _call_order(body: Any, _: Any) -> dict[tuple[str, str], int]:
    rows = _rows_of(body, 3)
    steps, calls = _column(rows, 0, str), _column(rows, 1, str)
    return dict(zip(zip(steps, calls, strict=True), _column(rows, 2, int), strict=True))


_INT = frozenset({int})
_LIST = frozenset({list})
_SCALAR = frozenset({str, int, float, bool, type(None)})


def _scalars(values: Iterable[Any]) -> bool:
    """Whether every value is a JSON scalar, which decodes to itself."""
    return set(map(type, values)) <= _SCALAR


# The context's entries, `(sort key, message, tokens)`, as rows: `[kind, key, tokens, fields]`.
# Message texts, tool arguments and results are JSON already and are stored as they are.


def _encode_entry(entry: tuple[Any, ...]) -> list[Any]:
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


_TOOL_CALLS = TypeAdapter(list[ToolCall])


_SHAPES = frozenset({("u", 4), ("s", 4), ("a", 6), ("r", 7)})  # (kind, row length)


def _decode_entries(body: Any, _: dict[str, Any]) -> list[tuple[Any, ...]]:
    rows = _items(body)
    if not set(map(type, rows)) <= _LIST:
        raise SnapshotError("a context entry is not a row")
    try:
        if not set(zip(map(itemgetter(0), rows), map(len, rows), strict=True)) <= _SHAPES:
            raise SnapshotError("a context entry of unknown kind or shape")
        keys = _keys(_column(rows, 1, list))
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
        for row, text_ in zip(rows, texts, strict=True):
            kind = row[0]
            if kind == "u":
                messages.append(UserTurn(text_))
            elif kind == "a":
                taken = tuple(islice(calls, len(row[4])))
                messages.append(AssistantTurn(text_, taken, row[5]))
            elif kind == "r":
                messages.append(ToolResult(text_, row[4], row[5], row[6]))
            else:
                messages.append(ContextSummary(text_))
    except (IndexError, TypeError, ValidationError) as exc:
        raise SnapshotError(f"a context entry does not have this code's shape: {exc}") from exc
    return list(zip(keys, messages, tokens, strict=True))


_STR = frozenset({str})


def decode(value: Any) -> Any:
    if isinstance(value, list):
        return value if _scalars(value) else [decode(item) for item in value]
    if not isinstance(value, dict):
        return value
    tag = value.get("$")
    if tag is None:
        if _scalars(value.values()):
            return value
        return {key: decode(item) for key, item in value.items()}
    body = value.get("v")
    decoder = _DECODERS.get(tag)
    if decoder is not None:
        return decoder(body, value)
    if tag in _DATACLASSES:
        cls = _DATACLASSES[tag]
        fields = _fields(body, {f.name for f in dataclasses.fields(cls)}, tag)
        return cls(**{key: decode(item) for key, item in fields.items()})
    if tag in _PLAIN:
        cls, attributes = _PLAIN[tag]
        fields = _fields(body, attributes, tag)
        instance = object.__new__(cls)
        instance.__dict__.update({key: decode(item) for key, item in fields.items()})
        if tag == "ContextAcc" and not isinstance(instance.__dict__["entries"], list):
            raise SnapshotError("a snapshot's context entries are not a list")
        return instance
    if tag in _MODELS:
        return _validated(lambda: _MODELS[tag].model_validate(body))
    raise SnapshotError(f"a snapshot holds an unknown {tag!r}")


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


def _decoded_items(body: Any) -> list[Any]:
    items = _items(body)
    return items if _scalars(items) else list(map(decode, items))


def _items(body: Any) -> list[Any]:
    if not isinstance(body, list):
        raise SnapshotError("a snapshot's collection is not a list")
    return body


# The LLM context's anchors, when equal to the next step's (always, for a thread this code
# wrote): stored once, since they are a third of a snapshot.
_SAME_ANCHORS = "sameAnchors"

_DECODERS: dict[str, Callable[[Any, dict[str, Any]], Any]] = {
    _SAME_ANCHORS: lambda body, _: _SAME_ANCHORS,
    "tuple": lambda body, _: tuple(_decoded_items(body)),
    "set": lambda body, _: _validated(lambda: set(_decoded_items(body))),
    "map": lambda body, _: {decode(k): decode(v) for k, v in _items(body)},
    "datetime": lambda body, _: _validated(lambda: datetime.fromisoformat(body)),
    "event": _event,
    "entries": _decode_entries,
    "claims": _claims,
    "attempts": _attempts,
    "keys": _sort_keys,
    "order": _call_order,
}


def state_of(view: ThreadView) -> dict[str, Any]:
    """The view's folded state, as a snapshot stores it (see `ThreadView.folds`)."""
    started, progress, context = view.folds()
    state = {"started": encode(started), "progress": encode(progress), "context": encode(context)}
    if context.anchors == progress.anchors:  # both folds place responses the same way
        state["context"]["v"]["anchors"] = {"$": _SAME_ANCHORS}
    return state


def pack(state: dict[str, Any]) -> dict[str, Any]:
    """The state as a snapshot message's data: its JSON, compressed (zlib, fastest level) and
    in base64. A thread's state is mostly ids and text; compressed it is a third of the size,
    and PostgreSQL stores one string instead of parsing a large jsonb document, which makes
    writing a snapshot about three times and reading one about five times cheaper."""
    return {"zlib": base64.b64encode(zlib.compress(orjson.dumps(state), 1)).decode()}


def unpack(data: dict[str, Any]) -> dict[str, Any]:
    try:
        state = orjson.loads(zlib.decompress(base64.b64decode(data["zlib"], validate=True)))
    except (KeyError, TypeError, ValueError, zlib.error) as exc:
        raise SnapshotError(f"a snapshot's data does not unpack: {exc}") from exc
    if not isinstance(state, dict):
        raise SnapshotError("a snapshot's state is not an object")
    return state


def restore(
    state: dict[str, Any], tail: list[Recorded[Event]], tool_result_max_chars: int
) -> ThreadView:
    """The view a snapshot's `state` and the events from its position on (`tail[0]` is the
    event it was taken at) stand for."""
    if set(state) != set(_STATE_KEYS):
        raise SnapshotError("a snapshot's state does not have this code's parts")
    started, progress, context = (decode(state[key]) for key in _STATE_KEYS)
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


_STATE_KEYS = ("started", "progress", "context")


# -- reading and writing ------------------------------------------------------------------------


class Snapshots:
    """One engine's snapshots: where to read them, and when to write them."""

    def __init__(
        self,
        store: MessageStore,
        interval: int = DEFAULT_INTERVAL,
        tool_result_max_chars: int = llm_context.DEFAULT_TOOL_RESULT_MAX_CHARS,
    ) -> None:
        if interval < 1:
            raise ValueError("a snapshot interval is at least one event")
        self.store = store
        self.interval = interval
        self.tool_result_max_chars = tool_result_max_chars
        try:
            self.fingerprint: str | None = f"{code_fingerprint()}/{tool_result_max_chars}"
        except (OSError, SnapshotError) as exc:  # no source to hash: never trust a snapshot
            log.warning("thread snapshots are off: %s", exc)
            self.fingerprint = None

    def may_exist(self, head: int) -> bool:
        """Whether a thread whose head is at `head` can have a snapshot worth reading."""
        return self.fingerprint is not None and head >= self.interval - 1

    def load(self, stream: str) -> ThreadView | None:
        """The view from the last usable snapshot and the events after it; None when there
        is none usable, and the caller reads the thread whole."""
        if self.fingerprint is None:
            return None
        message = self.store.get_last_stream_message(snapshot_stream(stream))
        if message is None:
            return None
        snapshot = from_message(message).event
        if not isinstance(snapshot, SnapshotRecorded) or snapshot.fingerprint != self.fingerprint:
            return None  # unreadable, or written by other code: the full replay decides
        position = snapshot.entity_version
        tail = read_thread(self.store, stream, after=position - 1)
        if not tail or tail[0].position != position or tail[0].id != snapshot.head_id:
            return None  # not the history it was taken of
        try:
            view = restore(unpack(snapshot.entity_data), tail, self.tool_result_max_chars)
        except SnapshotError as exc:
            log.warning("snapshot of %s at %s is not usable: %s", stream, position, exc)
            return None
        view.snapshot_position = position
        return view

    def due(self, view: ThreadView) -> bool:
        return (
            self.fingerprint is not None
            and view.head.position - view.snapshot_position >= self.interval
        )

    def save(self, view: ThreadView) -> bool:
        """Write the view's state as of its head; False when it could not be (it is a cache:
        the thread stays readable without it)."""
        if self.fingerprint is None:
            return False
        head = view.head
        try:
            snapshot = SnapshotRecorded(
                entity_version=head.position,
                head_id=head.id,
                fingerprint=self.fingerprint,
                entity_data=pack(state_of(view)),
            )
            stream = snapshot_stream(head.stream_name)
            id_ = ids.message_id(head.stream_name, f"snapshot-{head.position}")
            message = to_message(snapshot, Metadata(correlation_stream_name=head.stream_name), id_)
            self.store.write_messages(stream, [message], durable=False)
        except DuplicateMessageError:
            pass  # another worker snapshotted this very position
        except (SnapshotError, StoreError, ValueError, TypeError) as exc:
            log.warning("could not snapshot %s at %s: %s", head.stream_name, head.position, exc)
            return False
        view.snapshot_position = head.position
        return True
