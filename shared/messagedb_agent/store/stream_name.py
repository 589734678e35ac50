"""Stream names, following Message DB's conventions.

`category[:type[+type...]]-id[+id...]`: the category is everything before the first dash
(what `message_store.category()` returns), types qualify a category (`thread:position`), and a
compound id joins several ids with `+` (the first is the cardinal id, which consumer groups
hash). Anything else is rejected here, before it can reach SQL.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass

_CATEGORY = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_ID = re.compile(r"[A-Za-z0-9_.@|~=:!-]+")
MAX_LENGTH = 255


class InvalidStreamName(ValueError):
    """A stream name or one of its parts breaks Message DB's naming conventions."""


@dataclass(frozen=True, slots=True)
class StreamName:
    category: str
    ids: tuple[str, ...] = ()
    types: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_part("category", self.category, _CATEGORY)
        for type_ in self.types:
            _check_part("category type", type_, _CATEGORY)
        for id_ in self.ids:
            _check_part("id", id_, _ID)
            if id_.startswith("-"):
                raise InvalidStreamName(f"stream id {id_!r} must not start with '-'")
        if len(str(self)) > MAX_LENGTH:
            raise InvalidStreamName(f"stream name is longer than {MAX_LENGTH} characters")

    @property
    def category_name(self) -> str:
        """The category as `message_store.category()` reports it, types included."""
        if self.types:
            return f"{self.category}:{'+'.join(self.types)}"
        return self.category

    @property
    def id(self) -> str | None:
        return "+".join(self.ids) if self.ids else None

    @property
    def cardinal_id(self) -> str | None:
        return self.ids[0] if self.ids else None

    @property
    def is_category(self) -> bool:
        return not self.ids

    def __str__(self) -> str:
        if self.ids:
            return f"{self.category_name}-{'+'.join(self.ids)}"
        return self.category_name


def _check_part(what: str, value: str, pattern: re.Pattern[str]) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidStreamName(f"{what} must be a non-empty string")
    if not pattern.fullmatch(value):
        raise InvalidStreamName(
            f"{what} {value!r} has characters Message DB stream names do not allow here"
            f" (allowed: {pattern.pattern})"
        )


def build(category: str, *ids: str, types: tuple[str, ...] = ()) -> str:
    """Build a stream name (or a category name when no id is given) and validate it."""
    return str(StreamName(category, tuple(ids), tuple(types)))


def parse(stream_name: str) -> StreamName:
    """Split a stream name into its parts, rejecting anything Message DB would misread."""
    if not isinstance(stream_name, str) or not stream_name:
        raise InvalidStreamName("stream name must be a non-empty string")
    if len(stream_name) > MAX_LENGTH:
        raise InvalidStreamName(f"stream name is longer than {MAX_LENGTH} characters")
    category_part, dash, id_part = stream_name.partition("-")
    category, colon, types_part = category_part.partition(":")
    types = tuple(types_part.split("+")) if colon else ()
    if dash and not id_part:
        raise InvalidStreamName(f"stream name {stream_name!r} ends with '-' but has no id")
    ids = tuple(id_part.split("+")) if dash else ()
    return StreamName(category, ids, types)


def validate(stream_name: str) -> str:
    """A stream name (with an id), returned unchanged; raise InvalidStreamName otherwise.

    A bare category is refused: Message DB would accept a write to it, but
    `get_stream_messages` could never read it back.
    """
    if parse(stream_name).is_category:
        raise InvalidStreamName(
            f"{stream_name!r} is a category, not a stream name (it has no '-id' part)"
        )
    return stream_name


def validate_category(category: str) -> str:
    """A category name (types allowed, no id), as `get_category_messages` requires."""
    parsed = parse(category)
    if not parsed.is_category:
        raise InvalidStreamName(f"{category!r} is a stream name, not a category (it has an id)")
    return category


def category(stream_name: str) -> str:
    return parse(stream_name).category_name


def stream_id(stream_name: str) -> str | None:
    return parse(stream_name).id


def entity_id(category: str, value: str) -> str:
    """`value` itself when `category-value` is a valid stream name, else `~` and a SHA-256
    prefix of it.

    For ids from outside (user ids with spaces, `+` or non-ASCII, or too long). A valid value
    that itself starts with `~` is hashed too, so no value can name another value's stream.
    """
    if value and not value.startswith("~"):
        try:
            build(category, value)
        except InvalidStreamName:
            pass
        else:
            return value
    return "~" + hashlib.sha256(value.encode()).hexdigest()[:32]


# -- thread streams, spread over shard categories ------------------------------------------
#
# Message DB's `write_message` takes an advisory lock on the hash of the stream's *category*
# until the commit, so every write to one category is serialised. Threads are therefore spread
# over categories `thread_00` .. `thread_ff`: each shard has its own lock and its own relay
# cursor. The shard is the thread id's first byte, written there when the thread is created
# (ids of new threads are chosen so that byte is below THREAD_SHARDS), so a thread's stream is
# a pure function of its id, whatever THREAD_SHARDS is later set to. Threads created before
# sharding live in the legacy `thread` category (`thread-<uuid>`) and are read where they are.
#
# The shard is a plain category name, not a category type (`thread:s07`): in Message DB and
# Eventide a type names a different kind of stream about the same entities (`:position`,
# `:snapshot`), while a shard is a partition of one kind. `thread_` keeps the shards together
# in any listing of categories, and the two hex digits are the id's own first two.

THREAD_CATEGORY = "thread"
"""The legacy category: threads created before sharding, never written to for new threads."""
MAX_THREAD_SHARDS = 256
DEFAULT_THREAD_SHARDS = 16
"""Chosen from `bench/scale.py` on this project's own engine: see docs/capacity.md."""


def shard_category(shard: int) -> str:
    """`thread_07`: the category of shard `shard` (0..255)."""
    if not 0 <= shard < MAX_THREAD_SHARDS:
        raise ValueError(f"a thread shard is 0..{MAX_THREAD_SHARDS - 1}, not {shard}")
    return f"{THREAD_CATEGORY}_{shard:02x}"


def thread_categories(shards: int) -> tuple[str, ...]:
    """Every category that can hold threads with `shards` shards: the legacy one, then each
    shard's. Readers of "all threads" (the relay) cover these."""
    return (THREAD_CATEGORY, *(shard_category(shard) for shard in range(shards)))


def shard_of(thread_id: uuid.UUID | str) -> int:
    return uuid.UUID(str(thread_id)).bytes[0]


def in_shard(thread_id: uuid.UUID, shards: int) -> uuid.UUID:
    """`thread_id` with its first byte set to a shard below `shards`, chosen from the id itself
    (so a derived id stays derived: the same inputs give the same sharded id)."""
    if not 1 <= shards <= MAX_THREAD_SHARDS:
        raise ValueError(f"THREAD_SHARDS is 1..{MAX_THREAD_SHARDS}, not {shards}")
    raw = bytearray(thread_id.bytes)
    raw[0] %= shards
    return uuid.UUID(bytes=bytes(raw))


def new_thread_id(shards: int) -> uuid.UUID:
    """A random (version 4) thread id whose first byte names one of `shards` shards."""
    return in_shard(uuid.uuid4(), shards)


def thread_stream(thread_id: uuid.UUID | str) -> str:
    """`thread_<shard>-<uuid>`: where a thread created with sharding lives."""
    canonical = uuid.UUID(str(thread_id))
    return build(shard_category(canonical.bytes[0]), str(canonical))


def legacy_thread_stream(thread_id: uuid.UUID | str) -> str:
    """`thread-<uuid>`: where a thread created before sharding lives."""
    return build(THREAD_CATEGORY, str(uuid.UUID(str(thread_id))))


def thread_stream_candidates(thread_id: uuid.UUID | str) -> tuple[str, str]:
    """Where a thread can be, in the order to look: its shard, then the legacy category."""
    return thread_stream(thread_id), legacy_thread_stream(thread_id)


def is_thread_category(category: str) -> bool:
    return category == THREAD_CATEGORY or _SHARD.fullmatch(category) is not None


_SHARD = re.compile(rf"{THREAD_CATEGORY}_[0-9a-f]{{2}}")


def thread_id_of(stream_name: str) -> uuid.UUID:
    """The thread's UUID; only the canonical forms (`thread_stream`, `legacy_thread_stream`)
    are thread streams.

    `uuid.UUID` also accepts upper case, bare hex and `urn:uuid:` forms, and a shard category
    could name any shard; allowing either would let two different streams claim one thread.
    """
    parsed = parse(stream_name)
    if not is_thread_category(parsed.category_name) or parsed.id is None:
        raise InvalidStreamName(
            f"{stream_name!r} is not a thread stream (thread_<shard>-<uuid> or thread-<uuid>)"
        )
    try:
        thread_id = uuid.UUID(parsed.id)
    except ValueError as exc:
        raise InvalidStreamName(f"{stream_name!r} does not end in a UUID") from exc
    canonical = (
        legacy_thread_stream(thread_id)
        if parsed.category_name == THREAD_CATEGORY
        else thread_stream(thread_id)
    )
    if stream_name != canonical:
        raise InvalidStreamName(
            f"{stream_name!r} is not a canonical thread stream (expected {canonical})"
        )
    return thread_id
