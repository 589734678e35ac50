"""The step protocol: decide from events, claim, execute one effect, append, notify.

Names are loaded on first use (PEP 562): the ingest function needs the session commands, not
the step machinery and its HTTP client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from messagedb_agent.lazy import lazy_names

if TYPE_CHECKING:  # the same names, eagerly, for type checkers
    from messagedb_agent.engine.notification import InvalidNotification, Notification
    from messagedb_agent.engine.runner import run_until_idle
    from messagedb_agent.engine.step import (
        Engine,
        EngineConfig,
        Outcome,
        StepResult,
        ToolCallContext,
        ToolExecutor,
        ToolRunResult,
    )

_WHERE = {
    "InvalidNotification": "notification",
    "Notification": "notification",
    "run_until_idle": "runner",
    "Engine": "step",
    "EngineConfig": "step",
    "Outcome": "step",
    "StepResult": "step",
    "ToolCallContext": "step",
    "ToolExecutor": "step",
    "ToolRunResult": "step",
}

__all__ = [
    "Engine",
    "EngineConfig",
    "InvalidNotification",
    "Notification",
    "Outcome",
    "StepResult",
    "ToolCallContext",
    "ToolExecutor",
    "ToolRunResult",
    "run_until_idle",
]


__getattr__ = lazy_names(__name__, _WHERE)
