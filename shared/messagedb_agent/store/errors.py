"""What can go wrong talking to Message DB, each with the cause and the fix in one line."""

from __future__ import annotations


class StoreError(Exception):
    """Base of every store failure; `str()` is a one-line message fit for a user."""


class ConcurrencyError(StoreError):
    """`expected_version` did not match: someone else appended to the stream first."""

    def __init__(self, stream_name: str, expected_version: int, actual_version: int) -> None:
        self.stream_name = stream_name
        self.expected_version = expected_version
        self.actual_version = actual_version
        super().__init__(
            f"stream {stream_name} is at version {actual_version}, expected {expected_version}"
        )


class DuplicateMessageError(StoreError):
    """A message with this id was already written: the write it stands for already happened."""

    def __init__(self, message_id: str, stream_name: str) -> None:
        self.message_id = message_id
        self.stream_name = stream_name
        super().__init__(f"message {message_id} was already written (stream {stream_name})")


class StoreUnavailableError(StoreError):
    """The database cannot be reached or refuses us; retrying later may help."""


class NotInstalledError(StoreError):
    """Message DB is missing or half-installed in the target database."""


class TarballIntegrityError(StoreError):
    """The Message DB package does not match the pinned integrity hash."""
