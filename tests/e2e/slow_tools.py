"""Tools for the stack's tests of turn control, named in `TOOL_MODULES` like a deployer's own:
`slow_send` has an effect outside the store (a line in `E2E_EFFECTS_FILE`), made before it
waits, and is not idempotent, so a worker killed while it waits leaves an effect and no
record of it."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from messagedb_agent.tools import ToolContext, tool

EFFECTS_ENV = "E2E_EFFECTS_FILE"


@tool
def slow_send(ctx: ToolContext, to: str, seconds: float = 1.0) -> dict[str, Any]:
    """Send a message to someone; it takes a while.

    Args:
        to: Who receives it.
        seconds: How long sending takes.
    """
    with Path(os.environ[EFFECTS_ENV]).open("a") as effects:
        effects.write(f"{to} {ctx.idempotency_key}\n")
    time.sleep(max(0.0, min(seconds, 8.0)))
    return {"sent_to": to}


def effects_for(path: Path, to: str) -> list[str]:
    if not path.exists():
        return []
    return [line for line in path.read_text().splitlines() if line.split(" ", 1)[0] == to]
