"""Answers to POSTs that carried an `Idempotency-Key`, kept as events so retries replay them.

The first answer for (user, key) is written to its own stream `apiResponse-<hash>` with
`expected_version=-1`, so exactly one answer is ever recorded, however many instances race.
The record also keeps a fingerprint of the request, so the same key on a different request is
refused rather than answered with something unrelated.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from messagedb_agent.events import Event, Metadata, from_message, to_message
from messagedb_agent.store import stream_name as names
from messagedb_agent.store.errors import ConcurrencyError, DuplicateMessageError

if TYPE_CHECKING:
    from messagedb_agent.store.client import MessageStore

CATEGORY = "apiResponse"
HEADER = "Idempotency-Key"
KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
_KEY = re.compile(KEY_PATTERN)


class ApiResponseRecorded(Event):
    type: ClassVar[str] = "ApiResponseRecorded"

    request_fingerprint: str
    status: int
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RecordedAnswer:
    fingerprint: str
    status: int
    body: dict[str, Any]


def valid_key(key: str) -> bool:
    return bool(_KEY.match(key))


def record_stream(user: str, key: str) -> str:
    digest = hashlib.sha256(f"{user}\x00{key}".encode()).hexdigest()[:32]
    return names.build(CATEGORY, digest)


def fingerprint(method: str, path: str, body: Any) -> str:
    """The same request gives the same fingerprint, however its JSON was spaced or ordered."""
    canonical = orjson.dumps([method, path, body], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


class AnswerLog:
    def __init__(self, store: MessageStore) -> None:
        self.store = store

    def find(self, user: str, key: str) -> RecordedAnswer | None:
        first = self.store.get_stream_messages(record_stream(user, key), 0, 1)
        if not first:
            return None
        event = from_message(first[0]).event
        if not isinstance(event, ApiResponseRecorded):
            return None
        return RecordedAnswer(event.request_fingerprint, event.status, event.body)

    def wait_for(
        self, user: str, key: str, seconds: float, poll: float = 0.05
    ) -> RecordedAnswer | None:
        """The answer another request with this key is about to record, if it does in time."""
        deadline = time.monotonic() + seconds
        while True:
            answer = self.find(user, key)
            if answer is not None or time.monotonic() >= deadline:
                return answer
            time.sleep(poll)

    def record(self, user: str, key: str, answer: RecordedAnswer) -> RecordedAnswer:
        """Record `answer` unless another was recorded first; returns the one that counts."""
        stream = record_stream(user, key)
        message = to_message(
            ApiResponseRecorded(
                request_fingerprint=answer.fingerprint, status=answer.status, body=answer.body
            ),
            Metadata(user_id=user),
        )
        try:
            self.store.write_message(
                None, stream, message.type, message.data, message.metadata, expected_version=-1
            )
        except (ConcurrencyError, DuplicateMessageError):
            first = self.find(user, key)
            if first is not None:
                return first
            raise
        return answer
