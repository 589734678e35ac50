"""The main job on the embedded defaults: a real multi-turn conversation, printed.

Embedded PostgreSQL, the real Message DB, the offline stand-in model (or Vertex AI when
configured) and the task tools: every turn runs through the same step protocol as in the
cloud, and the tasks it creates live in the user's task stream, so the next run finds them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from messagedb_agent.config import Settings
from messagedb_agent.engine import run_until_idle
from messagedb_agent.engine.session import add_message, start_thread
from messagedb_agent.engine.thread import read_thread
from messagedb_agent.render import event_line, summary_line, transcript
from messagedb_agent.runtime import build_engine
from messagedb_agent.store.client import redact
from messagedb_agent.store.database import database_url, ensure_installed, open_store

DEMO_TURNS = (
    "What are my tasks?",
    "Add a task to buy milk and add a task to walk the dog",
    "Mark milk done",
    "What time is it and what is 12*(3+4)?",
    "Show my pending tasks",
)

Echo = Callable[[str], None]


def run_demo(settings: Settings, echo: Echo = print, turns: tuple[str, ...] = DEMO_TURNS) -> str:
    """Run the conversation; returns the thread id."""
    url = database_url(settings)
    report = ensure_installed(url, settings)
    model = settings.effective_model
    echo(f"database  {redact(url)} ({report.summary()})")
    label = (
        "offline stand-in (set GOOGLE_CLOUD_PROJECT to use Vertex AI)"
        if model == "offline"
        else f"{model} on Vertex AI"
    )
    echo(f"model     {label}")
    echo(f"user      {settings.local_user}\n")
    with open_store(settings, url) as store:
        engine = build_engine(settings, store)
        now = datetime.now(UTC)
        thread = start_thread(store, owner=settings.local_user, message=turns[0], now=now)
        echo(f"thread    {thread.thread_id}\n")
        shown = 0
        notification = thread.notification
        for index, text in enumerate(turns):
            if index:
                notification = add_message(
                    store,
                    thread.thread_id,
                    owner=settings.local_user,
                    message=text,
                    now=datetime.now(UTC),
                ).notification
            run_until_idle(engine, notification, chain=50)
            lines = transcript(read_thread(store, thread.stream_name))
            for line in lines[shown:]:
                echo(line)
            shown = len(lines)
            echo("")
        events = read_thread(store, thread.stream_name)
        echo(f"event stream {thread.stream_name}:")
        for recorded in events:
            echo(event_line(recorded))
        echo(f"\n{summary_line(events)}")
        echo(
            "\nEverything above is in Message DB. Run it again: the first answer lists the tasks "
            "this run saved.\nInspect it with `messagedb-agent show "
            f"{thread.thread_id} --events`."
        )
        return thread.thread_id
