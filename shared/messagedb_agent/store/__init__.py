"""Message DB access: stream names, the pooled client, the installer, the local server."""

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
