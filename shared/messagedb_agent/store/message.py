"""The row Message DB returns, and the row a writer hands it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson


class MessageData:
    """One stored message, as `message_store.message` describes it.

    `data` and `metadata` arrive as JSON text and are decoded on first access: a reader that
    only needs positions (the relay) pays nothing for payloads, and the event mapper hands the
    text straight to pydantic's JSON parser. Treat instances as immutable.
    """

    __slots__ = (
        "_data",
        "_metadata",
        "global_position",
        "id",
        "position",
        "stream_name",
        "time",
        "type",
    )

    def __init__(
        self,
        id: str,
        stream_name: str,
        type: str,
        position: int,
        global_position: int,
        data: dict[str, Any] | str | None,
        metadata: dict[str, Any] | str | None,
        time: datetime,
    ) -> None:
        self.id = id
        self.stream_name = stream_name
        self.type = type
        self.position = position
        self.global_position = global_position
        self._data: dict[str, Any] | str | None = data
        self._metadata: dict[str, Any] | str | None = metadata
        self.time = time

    @property
    def data(self) -> dict[str, Any]:
        """The decoded payload; a payload that is not a JSON object reads as `{}`."""
        raw = self._data
        if raw is None:
            return {}
        if isinstance(raw, str):
            decoded = orjson.loads(raw)
            if not isinstance(decoded, dict):
                return {}
            self._data = decoded  # only objects are cached: the text stays the source of truth
            return decoded
        return raw

    @property
    def metadata(self) -> dict[str, Any] | None:
        raw = self._metadata
        if isinstance(raw, str):
            decoded = orjson.loads(raw)
            if not isinstance(decoded, dict):
                return None
            self._metadata = decoded
            return decoded
        return raw

    @property
    def data_json(self) -> str | None:
        """The payload as JSON text, without decoding it when it was never decoded."""
        raw = self._data
        if raw is None or isinstance(raw, str):
            return raw
        return orjson.dumps(raw).decode()

    @property
    def metadata_json(self) -> str | None:
        raw = self._metadata
        if raw is None or isinstance(raw, str):
            return raw
        return orjson.dumps(raw).decode()

    def _key(self) -> tuple[Any, ...]:
        return (
            self.id,
            self.stream_name,
            self.type,
            self.position,
            self.global_position,
            self.data,
            self.metadata,
            self.time,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MessageData):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"MessageData(id={self.id!r}, stream_name={self.stream_name!r}, type={self.type!r}, "
            f"position={self.position}, global_position={self.global_position}, "
            f"data={self.data!r}, metadata={self.metadata!r}, time={self.time!r})"
        )


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to write; `id` is chosen by the writer when a retry must not write twice."""

    type: str
    data: dict[str, Any]
    metadata: dict[str, Any] | None = None
    id: str | None = field(default=None)
