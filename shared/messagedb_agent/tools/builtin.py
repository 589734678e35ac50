"""Tools every thread gets: the time, a calculator, an echo."""

from __future__ import annotations

from datetime import UTC
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from messagedb_agent.tools import arithmetic
from messagedb_agent.tools.context import ToolContext
from messagedb_agent.tools.errors import ToolInputError
from messagedb_agent.tools.registry import tool


@tool(idempotent=True)
def get_current_time(ctx: ToolContext, timezone: str = "UTC") -> dict[str, Any]:
    """Get the current date and time in a timezone.

    Args:
        timezone: An IANA timezone name such as "Europe/Paris" or "America/New_York".
    """
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolInputError(
            f"Unknown timezone {timezone!r}. Use an IANA name such as 'Europe/Paris' or 'UTC'."
        ) from None
    now = ctx.now if ctx.now.tzinfo is not None else ctx.now.replace(tzinfo=UTC)
    return {"time": now.astimezone(zone).isoformat(), "timezone": timezone}


@tool(idempotent=True)
def calculate(expression: str) -> dict[str, Any]:
    """Evaluate an arithmetic expression exactly, instead of doing the arithmetic yourself.

    Args:
        expression: Numbers with + - * / // % ** (or ^), parentheses, and sqrt, abs, round,
            min, max; for example "(3 + 4) * 2^3" or "sqrt(2) / 3".
    """
    return {"expression": expression, "result": arithmetic.evaluate(expression)}


@tool(idempotent=True)
def echo(message: str) -> dict[str, Any]:
    """Repeat a message back, unchanged.

    Args:
        message: The text to repeat.
    """
    return {"message": message}
