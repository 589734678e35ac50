"""Step benchmark: the engine's per-step overhead, model time excluded, by thread length.

The model is instant (it answers in microseconds, and its time is measured and subtracted),
so what remains is the price of durability: reading the thread, projecting, claiming, and
appending results. The turn has the peers' shape: one user message and K=5 tool round-trips
(6 LLM steps + 5 tool steps = 11 steps). For each history length H (10, 100, 1000 events
already in the thread) it prints p50/p99 per step, per turn, and beside it the raw Message DB
work a step needs at that length (read the stream whole + two appends with expected_version).

Env: HISTORY (10,100,1000), TURNS (20 measured turns per length), K (5)
Writes the figures as JSON to $BENCH_OUT when set (used by bench/compare.py).
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import Figures, bench_database, row
from messagedb_agent.engine.step import Engine
from messagedb_agent.events import ToolCall
from messagedb_agent.llm.types import (
    LLMConfig,
    LLMResponse,
    Message,
    ToolResult,
    ToolSpec,
    UserTurn,
)
from messagedb_agent.runtime import build_engine
from messagedb_agent.settings import Settings
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.commands import add_message, fork_thread, start_thread

HISTORY = [int(h) for h in os.environ.get("HISTORY", "10,100,1000").split(",")]
TURNS = int(os.environ.get("TURNS", "20"))
K = int(os.environ.get("K", "5"))
# steps one invocation may run in a row (1 = every step is its own delivery)
CHAIN = int(os.environ.get("CHAIN", "50"))


class PeerShapeModel:
    """Instant: K echo calls after each user message, one at a time, then a final answer."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def call(
        self, messages: list[Message], tools: list[ToolSpec], config: LLMConfig
    ) -> LLMResponse:
        start = time.perf_counter()
        since_user = 0
        for message in reversed(messages):
            if isinstance(message, UserTurn):
                break
            if isinstance(message, ToolResult):
                since_user += 1
        if since_user < K:
            reply = LLMResponse(
                text="",
                tool_calls=(
                    ToolCall(
                        id=f"e{since_user}",
                        name="echo",
                        arguments={"message": f"ping {since_user}"},
                    ),
                ),
                model_name="instant",
            )
        else:
            reply = LLMResponse(text="all done", tool_calls=(), model_name="instant")
        self.seconds += time.perf_counter() - start
        return reply


def run_turn(
    engine: Engine, model: PeerShapeModel, store: MessageStore, thread: str, owner: str
) -> tuple[list[float], float]:
    appended = add_message(
        store, thread, owner=owner, message="do the five things", now=datetime.now(UTC)
    )
    current = appended.notification
    steps_ms: list[float] = []
    while True:
        before = model.seconds
        start = time.perf_counter()
        result = engine.advance(current, max_steps=CHAIN)
        elapsed = time.perf_counter() - start - (model.seconds - before)
        if result.steps:
            steps_ms += [elapsed * 1000 / result.steps] * result.steps
        if not result.follow_ups:
            break
        current = result.follow_ups[-1]
    return steps_ms, sum(steps_ms)


def grow(
    engine: Engine,
    model: PeerShapeModel,
    store: MessageStore,
    stream: str,
    thread: str,
    owner: str,
    events: int,
) -> None:
    while (store.stream_version(stream) or 0) + 1 < events:
        run_turn(engine, model, store, thread, owner)


def raw_floor(store: MessageStore, stream: str) -> Figures:
    """Reading the stream whole plus two appends with expected_version, as raw SQL."""
    samples: list[float] = []
    scratch = f"thread-{uuid.uuid4()}"
    version = -1
    for _ in range(30):
        start = time.perf_counter()
        with store.pool.connection() as conn:
            conn.execute(
                "SELECT * FROM message_store.get_stream_messages(%s, 0, 100000)", (stream,)
            ).fetchall()
            for _ in range(2):
                conn.execute(
                    "SELECT message_store.write_message(%s, %s, 'X', '{}'::jsonb, NULL, %s)",
                    (str(uuid.uuid4()), scratch, version),
                ).fetchone()
                version += 1
        samples.append((time.perf_counter() - start) * 1000)
    return Figures(samples[5:])


def main() -> None:
    url = bench_database("bench_step")
    settings = Settings(database_url=url, model_name="offline")
    results: dict[str, dict[str, float]] = {}
    print(
        f"step benchmark: turns of 1 user message + {K} tool round-trips, instant model, {TURNS} turns per length"
    )
    with MessageStore(url, min_size=1, max_size=2) as store:
        for history in HISTORY:
            model = PeerShapeModel()
            engine = build_engine(settings, store, llm=model)
            owner = "bench-user"
            template = start_thread(store, owner=owner, message=None, now=datetime.now(UTC))
            grow(engine, model, store, template.stream_name, template.thread_id, owner, history)
            length = (store.stream_version(template.stream_name) or 0) + 1
            steps: list[float] = []
            turns: list[float] = []
            for _ in range(TURNS):
                # every measured turn runs on its own copy of the template, so each starts at H
                thread = fork_thread(store, template.thread_id, owner=owner, at=length - 1)
                per_step, total = run_turn(engine, model, store, thread.thread_id, owner)
                steps += per_step
                turns.append(total)
            # a warm instance driving the same thread turn after turn reads only each new tail
            warm_thread = fork_thread(store, template.thread_id, owner=owner, at=length - 1)
            run_turn(engine, model, store, warm_thread.thread_id, owner)  # warms the view cache
            warm: list[float] = []
            for _ in range(TURNS):
                per_step, _total = run_turn(engine, model, store, warm_thread.thread_id, owner)
                warm += per_step
            floor = raw_floor(store, template.stream_name)
            step_fig, turn_fig = Figures(steps), Figures(turns)
            print(f"\nH={history} (thread had {length} events before the measured turns)")
            print(row("engine step, cold instance (model excluded)", step_fig))
            print(row("engine step, warm instance (cached view)", Figures(warm)))
            print(row("turn (11 steps)", turn_fig))
            print(row("raw floor: read whole stream + 2 OCC appends", floor))
            results[str(history)] = {
                "step_p50_ms": step_fig.p50,
                "warm_step_p50_ms": Figures(warm).p50,
                "step_p99_ms": step_fig.p99,
                "turn_p50_ms": turn_fig.p50,
                "raw_floor_p50_ms": floor.p50,
                "events_before": length,
            }
    first, last = str(HISTORY[0]), str(HISTORY[-1])
    growth = results[last]["step_p50_ms"] / results[first]["step_p50_ms"]
    print(f"\ngrowth of the per-step p50 from H={first} to H={last}: {growth:.2f}x (target <= 3x)")
    if out := os.environ.get("BENCH_OUT"):
        Path(out).write_text(json.dumps(results))


if __name__ == "__main__":
    main()
