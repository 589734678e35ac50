"""Start a thread, run it to its answer in this process, print the transcript.

The smallest complete use of the library: the same engine and step protocol the step function
runs, on whatever the settings say (by default the embedded PostgreSQL with Message DB and the
offline stand-in model, so nothing needs to be running or configured first).

    .venv/bin/python examples/simple_agent.py "add a task to buy milk and what is 12*(3+4)"
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from messagedb_agent.engine.runner import run_until_idle
from messagedb_agent.postgres.connect import database_url, ensure_installed, open_store
from messagedb_agent.render import transcript
from messagedb_agent.runtime import build_engine
from messagedb_agent.settings import Settings
from messagedb_agent.threads.commands import start_thread
from messagedb_agent.threads.reading import read_thread

DEFAULT_MESSAGE = "What is 12*(3+4)?"


def main(message: str) -> None:
    settings = Settings()  # the environment, a .env file, or the embedded defaults
    url = database_url(settings)  # starts the embedded server when no DATABASE_URL is set
    ensure_installed(url, settings)  # Message DB's schema, once
    with open_store(settings, url) as store:
        engine = build_engine(settings, store)
        user = settings.local.local_user
        thread = start_thread(store, owner=user, message=message, now=datetime.now(UTC))
        run_until_idle(engine, thread.notification, chain=50)  # every step, until answered
        print(f"thread {thread.thread_id}")
        for line in transcript(read_thread(store, thread.stream_name)):
            print(line)


if __name__ == "__main__":
    main(" ".join(sys.argv[1:]) or DEFAULT_MESSAGE)
