"""Why a database call failed, told in one line: the cause and the fix, never a password."""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from messagedb_agent.store.errors import (
    ConcurrencyError,
    DuplicateMessageError,
    StoreError,
    StoreUnavailableError,
)

_WRONG_VERSION = re.compile(
    r"Wrong expected version: (-?\d+) \(Stream: (.*), Stream Version: (-?\d+)\)"
)


def duplicate_id(exc: psycopg.Error) -> str | None:
    """The id a unique violation names (`Key (id)=(...) already exists.`), if any."""
    detail = getattr(exc.diag, "message_detail", None) or ""
    match = re.search(r"Key \(id\)=\(([^)]*)\)", detail)
    return match.group(1) if match else None


def write_error(exc: psycopg.Error, message_id: str, stream_name: str) -> StoreError:
    if isinstance(exc, pg_errors.RaiseException):
        match = _WRONG_VERSION.search(str(exc))
        if match:
            return ConcurrencyError(match.group(2), int(match.group(1)), int(match.group(3)))
    if isinstance(exc, pg_errors.UniqueViolation) and "messages_id" in str(exc):
        return DuplicateMessageError(message_id, stream_name)
    if isinstance(exc, pg_errors.InvalidTextRepresentation):
        return StoreError(f"message id {message_id!r} is not a UUID")
    if isinstance(exc, psycopg.OperationalError):
        return StoreUnavailableError(one_line(exc))
    return StoreError(one_line(exc))


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def describe_connect_failure(
    conninfo: str, connection_class: type[psycopg.Connection[Any]] = psycopg.Connection
) -> str:
    """Try one direct connection to learn *why* the pool could not connect."""
    try:
        connection_class.connect(conninfo, connect_timeout=3).close()
    except psycopg.Error as exc:
        return describe_connection_error(exc, conninfo)
    return f"timed out waiting for a database connection ({redact(conninfo)})"


def describe_connection_error(exc: BaseException, conninfo: str) -> str:
    """One line naming the cause and the fix, with the password redacted."""
    text = one_line(exc)
    where = redact(conninfo)
    low = str(exc).lower()
    if "password authentication failed" in low or "no password supplied" in low:
        return f"cannot log in to {where}: wrong user or password. Fix: correct DATABASE_URL."
    if "does not exist" in low and "database" in low:
        return f"{text} at {where}. Fix: create the database or point DATABASE_URL at one."
    if (
        "connection refused" in low
        or "could not translate host name" in low
        or "no such file or directory" in low
        or "timeout" in low
        or "timed out" in low
    ):
        return (
            f"cannot reach PostgreSQL at {where}: {text}. "
            "Fix: start the server, or unset DATABASE_URL to use the embedded one."
        )
    return f"cannot connect to {where}: {text}"


_URL_PASSWORD = re.compile(r"(://[^:/?#@]*:)[^/?#]*@")
_PARAM_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s]*)", re.IGNORECASE)


def redact(conninfo: str) -> str:
    """The conninfo with any password replaced, safe for logs and error messages.

    Covers the URL's user info (up to its last `@`, as a raw `@` in a password would leave
    it), `?password=` in the query, and `password=` in the key/value form.
    """
    hidden = _URL_PASSWORD.sub(r"\1***@", conninfo)
    return _PARAM_PASSWORD.sub(r"\1***", hidden)
