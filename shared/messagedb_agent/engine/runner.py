"""Drive a thread in-process until it needs the user: the CLI's loop, and the tests'.

In the cloud the same chain runs through Pub/Sub, one step per delivery; here each step's
follow-up notification is handled directly, and waits (a backoff, another worker's lease) are
slept through, bounded by `max_wait`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from messagedb_agent.engine.step import Engine, StepResult
from messagedb_agent.notification import Notification
from messagedb_agent.projections.next_step import StepKind

StepObserver = Callable[[StepResult], None]


def run_until_idle(
    engine: Engine,
    notification: Notification,
    *,
    max_steps: int = 100,
    max_wait: float = 60.0,
    chain: int = 1,
    on_step: StepObserver | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[StepResult]:
    results: list[StepResult] = []
    current = notification
    waited = 0.0
    for _ in range(max_steps):
        result = engine.advance(current, max_steps=chain)
        results.append(result)
        if on_step is not None:
            on_step(result)
        if result.follow_ups:
            current = result.follow_ups[-1]
            continue
        if result.outcome in (StepKind.RETRY_LATER, StepKind.IN_FLIGHT) and result.not_before:
            delay = _seconds_until(result.not_before, engine.clock())
            if waited + delay > max_wait:
                break
            sleep(delay)
            waited += delay
            version = engine.store.stream_version(current.stream_name)
            current = Notification(stream_name=current.stream_name, position=version or 0)
            continue
        if result.outcome is StepKind.STALE:
            version = engine.store.stream_version(current.stream_name)
            current = Notification(stream_name=current.stream_name, position=version or 0)
            continue
        break
    return results


def _seconds_until(moment: datetime, now: datetime) -> float:
    return max(0.0, (moment - now).total_seconds()) + 0.01
