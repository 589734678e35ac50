"""The SSE ids of a live stream, read back as the cursor a client resumes from.

`12` is everything up to stream position 12, `12.3` position 12's AG-UI group up to index 3
(`projections/agui.py`), `12~40` position 12 and 40 characters of the live model text that
followed it (`stream.py`); `-1` is the start. This is the one grammar: the API's parser and
the `pattern` in its OpenAPI document both come from here. The limits are generous for any id
the stream hands out (positions are bigints) and keep every number a client sends small.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from messagedb_agent.projections.agui import Emitted

__all__ = ["PATTERN", "START", "Cursor", "after_cursor", "parse_cursor"]

_GRAMMAR = r"(-1|0|[1-9][0-9]{0,15})(?:\.(0|[1-9][0-9]{0,5})|~(0|[1-9][0-9]{0,8}))?"
PATTERN = f"^{_GRAMMAR}$"  # for JSON Schema, which does not anchor patterns
_CURSOR = re.compile(_GRAMMAR)


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a client stopped: after `position` (up to `index` of its group when set), having
    had `chars` characters of the live text that followed it."""

    position: int
    index: int | None = None
    chars: int = 0


START = Cursor(-1)


def parse_cursor(value: str) -> Cursor:
    """The cursor an SSE id names; anything the stream never hands out is a ValueError."""
    match = _CURSOR.fullmatch(value)
    if match is None:
        raise ValueError(f"not an event id of this stream: {value!r}")
    position, index, chars = match.groups()
    return Cursor(int(position), None if index is None else int(index), int(chars or 0))


def after_cursor(emitted: Emitted, cursor: Cursor) -> bool:
    """Whether `emitted` comes after `cursor`. A group's last event has no index in its id,
    and no cursor inside a group can name it, so it follows every such cursor."""
    if emitted.position != cursor.position:
        return emitted.position > cursor.position
    if cursor.index is None:
        return False
    _, dot, own = emitted.sse_id.partition(".")
    return not dot or int(own) > cursor.index
