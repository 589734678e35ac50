"""The step protocol: decide from events, claim, execute one effect, append, notify."""

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
