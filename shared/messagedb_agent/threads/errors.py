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


class ApprovalNotFound(ThreadError):
    code = "approval_not_found"

    def __init__(self, tool_call_id: str) -> None:
        super().__init__(f"Nothing in this conversation is waiting for approval as {tool_call_id}.")


class ApprovalDecided(ThreadError):
    """A second, different decision on a call whose approval was already decided."""

    code = "approval_decided"

    def __init__(self, tool_call_id: str, decision: str) -> None:
        said = {
            "approved": "was already approved",
            "declined": "was already declined",
            "expired": "expired before anyone decided",
            "withdrawn": "was withdrawn when the turn was cancelled",
        }.get(decision, "was already decided")
        super().__init__(f"The call {tool_call_id} {said}; that decision stands.")


class TurnRunning(ThreadError):
    """A message refused because a turn runs and the thread (or request) says `reject`."""

    code = "turn_running"

    def __init__(self, thread: str) -> None:
        super().__init__(
            f"I'm still working on your previous message in {thread}; please wait for my "
            "answer (or cancel it) before sending another."
        )
