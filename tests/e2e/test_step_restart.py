"""The step function dies mid-run (SIGKILL, no goodbye) and the stack brings it back on its port.

To die in the middle of a step rather than between two, the instance is killed while it runs
the first tool step of every conversation: the test holds the advisory lock Message DB's
`write_message` takes for the `tasks` category, so each `add_task` waits on its write with
its claim (two-second lease) already recorded; the deliveries queued behind them die too. What the killed instance held is recovered by
Pub/Sub's redelivery, the relay re-announcing the heads, and the lease's expiry: the tool
step runs again (attempt 2) under its step id, and the task is still added once.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager

import psycopg
from tests.e2e.conftest import Live
from tests.e2e.conversation import Chat, check_transcript

from messagedb_agent.stack.processes import Service, http_answers, wait_until

USERS = 6
TASKS_LOCK = "SELECT pg_advisory_lock(message_store.hash_64('tasks'))"


@contextmanager
def tasks_held(database_url: str) -> Iterator[None]:
    """Hold the lock every write to a `tasks-*` stream needs, until the block ends."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(TASKS_LOCK)
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock_all()")


def _tool_claimed(chat: Chat) -> bool:
    """The conversation's head is a tool claim: its step is running (and waits on the lock)."""
    events = chat.events() if chat.thread_id else []
    return bool(events) and events[-1]["type"] == "ToolExecutionRequested"


def _kill(service: Service) -> None:
    process = service.process  # the stack replaces it once it restarts the function
    assert process is not None
    os.killpg(process.pid, signal.SIGKILL)  # the master and its worker, at once
    process.wait(10)


def _back(live: Live, service: Service, dead_pid: int | None) -> None:
    """Wait for the stack's supervisor to have started `service` again and for it to answer."""
    url = live.stack.urls[service.name] + "/"
    wait_until(
        lambda: service.running and service.pid != dead_pid and http_answers(url),
        "the restarted step",
        timeout=60,
    )


def test_a_step_function_killed_mid_step_loses_no_turn_and_repeats_no_effect(live: Live) -> None:
    step = live.service("step")
    with ExitStack() as clients:
        chats = [
            Chat(clients.enter_context(live.client(f"crash-{i}-{uuid.uuid4().hex[:6]}")))
            for i in range(USERS)
        ]
        with ThreadPoolExecutor(USERS) as pool:
            with tasks_held(live.database_url):
                running = [pool.submit(chat.run) for chat in chats]
                # Deliveries queue behind the blocked ones (the instance's pool is small):
                # the kill finds some mid-tool and the others waiting or not yet delivered.
                deadline = time.monotonic() + 20
                while not any(_tool_claimed(c) for c in chats) and time.monotonic() < deadline:
                    time.sleep(0.1)
                time.sleep(0.3)
                mid_tool = {c.thread_id for c in chats if _tool_claimed(c)}
                assert mid_tool, "no tool step started"

                dead_pid = step.pid
                _kill(step)
            _back(live, step, dead_pid)

            done, late = wait(running, timeout=120)
        assert not late
        for future in done:
            future.result()
        assert step.running
        assert step.pid != dead_pid
        assert live.stack.supervisor is not None
        assert live.stack.supervisor.restarts("the step function") >= 1
        for chat in chats:
            events = check_transcript(chat)  # tasks #1 and #2, each added once
            retried = {
                e["data"]["tool_call_id"]
                for e in events
                if e["type"] == "ToolExecutionRequested" and e["data"]["attempt"] == 2
            }
            if chat.thread_id in mid_tool:  # its claims were taken over once their lease ran out
                assert retried == {"call_1_0_0_add_task", "call_1_0_1_add_task"}
