"""Answers to POSTs that carried an `Idempotency-Key`, kept until they expire so retries replay them.

They live in the table `agent.idempotent_responses` (made by the installer:
`postgres/agent_schema.py`), not in the log: an answer is operational state with an expiry,
not a fact. One row per (user, key), named by a hash of both, holds a fingerprint of the
request, the status and body answered, and when it expires (`IDEMPOTENCY_TTL_SECONDS`, 24 h by
default). The database's clock decides expiry, so every instance agrees.

`AnswerTable.write_once` serves one keyed write:

1. A live row is replayed; a request that differs from the one it answered is refused
   (`idempotency_key_reused`). Without a row, the stream `apiResponse-<hash>` where the
   previous release recorded its answers as events is read in the same statement, so a retry
   across the deploy is still replayed (such an answer expires like a row).
2. Otherwise the write runs in one transaction with the insert of its answer, which the handler
   computes from what was written (its position): a crash leaves both or neither.
3. Requests racing with one key: Message DB refuses the loser's write (deterministic ids, an
   expected version) once the winner has committed, and the winner committed its answer with
   its write, so the loser rolls back and replays it. Two writes that do not collide (one key
   on two threads) meet at the row instead: the second finds the first's answer there, and
   its whole transaction, its message included, rolls back.
4. A write refused with no answer to replay (an answer that expired, or a write of the previous
   release that crashed before recording its answer) already happened: the command runs
   again on the store itself, outside a transaction, where its own retry handling finds the
   first write; that answer is recorded. So does a write whose expected version was refused
   `TRANSACTION_ATTEMPTS` times (a thread whose head kept moving): there its answer is
   recorded just after it, and a crash in between leaves a message whose retry is answered
   from the log (the key's message id finds it), never written twice.

Until the installer has made the table (a deploy starts the new functions before its installer
job runs), a keyed POST is answered 503 with nothing written, so its client's retry, with the
same key, is served once the table is there.

Expired rows are deleted as answers are recorded: every `PURGE_EVERY`-th answer a process
records, it deletes at most `PURGE_LIMIT` expired rows (skipping rows another purge holds),
after the write's transaction, so no write's lock waits for it.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from messagedb_agent.api.errors import ApiError
from messagedb_agent.api.handlers import Answer, Write, Written
from messagedb_agent.events import Event
from messagedb_agent.postgres.agent_schema import installed
from messagedb_agent.store import stream_name as names
from messagedb_agent.store.errors import ConcurrencyError, StoreError
from messagedb_agent.store.transaction import TransactionAborted

if TYPE_CHECKING:
    from messagedb_agent.store.client import MessageStore

log = logging.getLogger(__name__)

CATEGORY = "apiResponse"  # where the previous release recorded answers; read, never written
HEADER = "Idempotency-Key"
KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
_KEY = re.compile(KEY_PATTERN)
PURGE_EVERY = 50
PURGE_LIMIT = 500
# Tries of the write's transaction while its expected version is refused (the head moved).
TRANSACTION_ATTEMPTS = 3

# The live row, else the previous release's event; at most one row either way.
_FIND = """
SELECT request_fingerprint, status, body FROM agent.idempotent_responses
WHERE key = %(key)s AND expires_at > now()
UNION ALL
SELECT d->>'request_fingerprint', (d->>'status')::int, d->'body'
FROM message_store.get_stream_messages(%(stream)s, 0, 1, NULL::varchar) AS m,
    LATERAL (SELECT m.data::jsonb AS d) AS data
WHERE m.type = 'ApiResponseRecorded'
    AND m.time > (now() AT TIME ZONE 'utc') - make_interval(secs => %(ttl)s)
LIMIT 1
"""
# Takes the key unless a live answer holds it (an expired one is replaced): no row back means
# another answer counts. A concurrent insert of the same key waits here for that one's commit.
_RECORD = """
INSERT INTO agent.idempotent_responses AS r
    (key, request_fingerprint, status, body, created_at, expires_at)
VALUES (
    %(key)s, %(fingerprint)s, %(status)s, %(body)s::jsonb, now(),
    now() + make_interval(secs => %(ttl)s)
)
ON CONFLICT (key) DO UPDATE SET
    (request_fingerprint, status, body, created_at, expires_at)
    = (EXCLUDED.request_fingerprint, EXCLUDED.status, EXCLUDED.body, EXCLUDED.created_at,
       EXCLUDED.expires_at)
WHERE r.expires_at <= now()
RETURNING 1
"""
_PURGE = """
DELETE FROM agent.idempotent_responses WHERE key IN (
    SELECT key FROM agent.idempotent_responses WHERE expires_at <= now()
    LIMIT %(limit)s FOR UPDATE SKIP LOCKED
)
"""


class ApiResponseRecorded(Event):
    """How the previous release recorded an answer (stream `apiResponse-<hash>`); read only."""

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


def answer_key(user: str, key: str) -> str:
    """The row's key: a hash of the user and their key, the id of the previous release's stream."""
    return hashlib.sha256(f"{user}\x00{key}".encode()).hexdigest()[:32]


def record_stream(user: str, key: str) -> str:
    """The stream where the previous release recorded the answer for (user, key)."""
    return names.build(CATEGORY, answer_key(user, key))


def fingerprint(method: str, path: str, body: Any) -> str:
    """The same request gives the same fingerprint, however its JSON was spaced or ordered."""
    canonical = orjson.dumps([method, path, body], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


class _Taken(Exception):
    """Another answer holds the key: roll this write back and replay that one."""


class AnswerTable:
    """One per process; thread-safe (each call takes its own connection or transaction)."""

    def __init__(self, store: MessageStore, ttl_seconds: int) -> None:
        self.store = store
        self.ttl_seconds = ttl_seconds
        self._recorded = itertools.count(1)

    def find(self, user: str, key: str) -> RecordedAnswer | None:
        params = {
            "key": answer_key(user, key),
            "stream": record_stream(user, key),
            "ttl": self.ttl_seconds,
        }
        with installed("agent.idempotent_responses"), self.store.connection() as conn:
            row = conn.execute(_FIND, params).fetchone()
        if row is None:
            return None
        return RecordedAnswer(str(row[0]), int(row[1]), dict(row[2]))

    def record(self, store: MessageStore, user: str, key: str, answer: RecordedAnswer) -> bool:
        """Insert the answer through `store` (a transaction: it commits with the write); False
        when a live answer already holds the key."""
        params = {
            "key": answer_key(user, key),
            "fingerprint": answer.fingerprint,
            "status": answer.status,
            "body": orjson.dumps(answer.body).decode(),
            "ttl": self.ttl_seconds,
        }
        with installed("agent.idempotent_responses"), store.connection() as conn:
            return conn.execute(_RECORD, params).fetchone() is not None

    def purge(self, limit: int = PURGE_LIMIT) -> int:
        """Delete up to `limit` expired rows; how many went."""
        with self.store.connection() as conn:
            return conn.execute(_PURGE, {"limit": limit}).rowcount

    def write_once(self, user: str, key: str, signature: str, write: Write) -> Written:
        """`write`'s answer, written and recorded once for (user, key), or the recorded one."""
        found = self.find(user, key)
        if found is not None:
            return _replayed(found, signature)
        for _ in range(TRANSACTION_ATTEMPTS):
            try:
                with self.store.transaction() as transaction:
                    written = write(transaction)
                    if not self.record(transaction, user, key, _answer(signature, written)):
                        raise _Taken
            except (TransactionAborted, _Taken) as exc:
                found = self.find(user, key)
                if found is not None:
                    return _replayed(found, signature)
                moved = isinstance(exc, TransactionAborted) and isinstance(
                    exc.refusal, ConcurrencyError
                )
                if isinstance(exc, _Taken) or moved:
                    continue  # the answer holding the key expired meanwhile; a version moved
                break  # a duplicate with no answer kept: the write happened earlier
            else:
                self._after_recording()
                return written
        written = write(self.store)
        if not self.record(self.store, user, key, _answer(signature, written)):
            found = self.find(user, key)
            if found is not None:
                return _replayed(found, signature)
        self._after_recording()
        return written

    def _after_recording(self) -> None:
        if next(self._recorded) % PURGE_EVERY:
            return
        try:
            deleted = self.purge()
        except StoreError as exc:  # the next purge tries again; the answer stands
            log.warning("deleting expired idempotent answers failed: %s", exc)
            return
        if deleted:
            log.debug("deleted %d expired idempotent answers", deleted)


def _answer(signature: str, written: Written) -> RecordedAnswer:
    return RecordedAnswer(signature, written.answer.status, written.answer.payload())


def _replayed(found: RecordedAnswer, signature: str) -> Written:
    if found.fingerprint != signature:
        raise ApiError(
            422,
            "idempotency_key_reused",
            "This Idempotency-Key was already used for a different request; "
            "use a new key for a new request.",
        )
    return Written(Answer(found.status, found.body, replayed=True))
