"""Failures a tool raises on purpose, each telling the executor how to report it.

Anything else a tool raises is an unexpected `exception`: reported, never retried.
"""

from __future__ import annotations

from typing import ClassVar


class ToolError(Exception):
    """A failure the model should see as it is; the message is written for the model."""

    kind: ClassVar[str] = "exception"
    retryable: ClassVar[bool] = False


class ToolInputError(ToolError):
    """The arguments make no sense for the user's data (an unknown task id, a bad timezone):
    the model can fix the call, so retrying it unchanged cannot help."""

    kind = "invalid_arguments"


class ToolForbiddenError(ToolError):
    """The call asks for something the acting user may not do."""

    kind = "forbidden"


class TransientToolError(ToolError):
    """A fault that may pass (a busy database, a flaky remote server): worth retrying."""

    retryable = True
