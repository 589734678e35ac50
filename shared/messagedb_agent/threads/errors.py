"""Refusals a user can see: each message is written for people, not for logs."""

from __future__ import annotations


class ThreadError(Exception):
    code = "thread_error"


class ThreadNotFound(ThreadError):
    """No such thread, or it belongs to someone else (the two are indistinguishable on purpose)."""

    code = "thread_not_found"

    def __init__(self, thread: str) -> None:
        super().__init__(f"I can't find the conversation {thread}.")


class ThreadClosed(ThreadError):
    code = "thread_closed"

    def __init__(self, thread: str) -> None:
        super().__init__(f"The conversation {thread} has ended; please start a new one.")


class MessageRejected(ThreadError):
    code = "invalid_message"
