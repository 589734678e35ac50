"""Define a tool, give it to the engine, and call it by name through the offline model.

`build_engine(..., tools=[...])` is how a program that builds its own engine adds tools; a
deployment names the tool's module in `TOOL_MODULES` instead. The offline stand-in model calls
any tool given `/call NAME key=value ...`, so the tool is tried without a real model.

    .venv/bin/python examples/custom_tool.py
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any, Literal

from messagedb_agent.engine.runner import run_until_idle
from messagedb_agent.llm.offline import OfflineModel
from messagedb_agent.postgres.connect import database_url, ensure_installed, open_store
from messagedb_agent.runtime import build_engine
from messagedb_agent.settings import Settings
from messagedb_agent.threads.commands import start_thread
from messagedb_agent.threads.reading import read_thread
from messagedb_agent.tools import ToolContext, ToolInputError, tool


@tool
def set_priority(
    ctx: ToolContext, task_id: int, level: Literal["low", "high"] = "low"
) -> dict[str, Any]:
    """Set a task's priority.

    Args:
        task_id: The task's number, as the user sees it.
        level: How urgent it is.
    """
    if task_id < 1:
        raise ToolInputError("Task numbers start at 1.")  # the model reads this and can retry
    return {"task_id": task_id, "level": level, "set_for": ctx.owner}


def main(message: str) -> None:
    settings = Settings()
    url = database_url(settings)
    ensure_installed(url, settings)
    with open_store(settings, url) as store:
        # The offline model, whatever the settings say: `/call` is its syntax.
        engine = build_engine(settings, store, OfflineModel(), tools=[set_priority])
        user = settings.local.local_user
        thread = start_thread(store, owner=user, message=message, now=datetime.now(UTC))
        run_until_idle(engine, thread.notification, chain=50)
        answer = read_thread(store, thread.stream_name)[-1].event
        print(f"you        {message}")
        print(f"assistant  {getattr(answer, 'response_text', answer)}")


if __name__ == "__main__":
    main(" ".join(sys.argv[1:]) or "/call set_priority task_id=1 level=high")
