"""Several store calls in one PostgreSQL transaction: all of them commit, or none does.

`MessageStore.transaction()` yields a `Transaction`, which is a `MessageStore` whose every
method runs on one pooled connection inside one transaction. Code written against the store
(the thread commands) runs inside it unchanged, and the caller adds statements of its own on
the same connection (`connection()`), which commit with the messages or not at all.

Message DB's `write_message` takes its category's advisory lock for the rest of the
transaction, so the lock is held until this transaction commits: keep a transaction to a few
statements, and never wait for anything inside one.

A refused write (a duplicate id, a wrong expected version) aborts a PostgreSQL transaction:
nothing more can run in it, and nothing it did will commit. The refusal is therefore raised as
`TransactionAborted`, carrying it, never as the refusal itself: code that catches a duplicate to
carry on (as the commands do outside a transaction, to answer a retry with the first write)
cannot mistake it for one it may carry on from. The whole transaction rolls back and its
caller decides what to do instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Self

import psycopg
from psycopg.pq import TransactionStatus

from messagedb_agent.store.client import MessageStore
from messagedb_agent.store.errors import ConcurrencyError, DuplicateMessageError, StoreError

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool


class TransactionAborted(StoreError):
    """A write inside a transaction was refused; the transaction rolled back as a whole."""

    def __init__(self, refusal: StoreError) -> None:
        self.refusal = refusal
        super().__init__(f"the transaction was rolled back: {refusal}")


class Transaction(MessageStore):
    """The store's methods on the one connection of an open transaction.

    Made only by `MessageStore.transaction()`, which commits it when its block ends and rolls
    it back when an exception leaves the block. It has no pool of its own: opening, closing
    or asking for its pool is a mistake.
    """

    def __init__(self, store: MessageStore, conn: psycopg.Connection[Any]) -> None:
        # No `super().__init__()`: that would make a pool. Only what the methods read is set.
        self.conninfo = store.conninfo
        self._store = store
        self._conn = conn
        self._aborted: TransactionAborted | None = None

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        if self._aborted is not None:
            raise TransactionAborted(self._aborted.refusal)
        try:
            yield self._conn
        except (DuplicateMessageError, ConcurrencyError) as exc:
            self._aborted = TransactionAborted(exc)
            raise self._aborted from exc

    @contextmanager
    def transaction(self) -> Iterator[MessageStore]:
        """A transaction inside this one is this one: its statements commit with the rest."""
        yield self

    def check(self) -> None:
        """Raise if the transaction can no longer commit (a refusal that was caught, or any
        failed statement): PostgreSQL would turn the COMMIT into a silent ROLLBACK."""
        if self._aborted is not None:
            raise TransactionAborted(self._aborted.refusal)
        if self._conn.info.transaction_status == TransactionStatus.INERROR:
            raise StoreError("a statement failed inside the transaction; it was rolled back")

    # -- what belongs to the store's pool, not to one transaction -----------------------------

    def open(self) -> Self:
        raise TypeError("a transaction is opened by MessageStore.transaction()")

    def close(self) -> None:
        raise TypeError("a transaction ends with its `with` block")

    def dedicated_connection(self) -> psycopg.Connection[Any]:
        return self._store.dedicated_connection()

    @property
    def pool(self) -> ConnectionPool:
        return self._store.pool

    @property
    def unavailable(self) -> str | None:
        return self._store.unavailable
