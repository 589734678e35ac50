"""Message DB access: stream names, the pooled client, the installer, the local server.

Names are loaded on first use: the event mapper needs `MessageData`, not psycopg.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from messagedb_agent.lazy import lazy_names

if TYPE_CHECKING:  # the same names, eagerly, for type checkers
    from messagedb_agent.store.client import Health, MessageStore
    from messagedb_agent.store.errors import (
        ConcurrencyError,
        DuplicateMessageError,
        NotInstalledError,
        StoreError,
        StoreUnavailableError,
        TarballIntegrityError,
    )
    from messagedb_agent.store.message import MessageData, NewMessage
    from messagedb_agent.store.stream_name import InvalidStreamName, StreamName

_WHERE = {
    "Health": "client",
    "MessageStore": "client",
    "ConcurrencyError": "errors",
    "DuplicateMessageError": "errors",
    "NotInstalledError": "errors",
    "StoreError": "errors",
    "StoreUnavailableError": "errors",
    "TarballIntegrityError": "errors",
    "MessageData": "message",
    "NewMessage": "message",
    "InvalidStreamName": "stream_name",
    "StreamName": "stream_name",
}

__all__ = [
    "ConcurrencyError",
    "DuplicateMessageError",
    "Health",
    "InvalidStreamName",
    "MessageData",
    "MessageStore",
    "NewMessage",
    "NotInstalledError",
    "StoreError",
    "StoreUnavailableError",
    "StreamName",
    "TarballIntegrityError",
]

__getattr__ = lazy_names(__name__, _WHERE)
