"""Shared values of the tool tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from messagedb_agent.tools import ToolContext

FIXED_NOW = datetime(2025, 3, 14, 15, 9, 26, tzinfo=UTC)

MakeContext = Callable[..., ToolContext]
"""Builds a context for the test's thread: `make_ctx(owner=..., step_id=..., tool_call_id=...)`."""
