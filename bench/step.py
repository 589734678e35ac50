"""Step benchmark: the engine's own cost per step, against one raw Message DB commit.

The model is instant (it answers in microseconds, and its time is measured and subtracted),
so what remains is the engine: reading the thread, projecting, claiming, running the tool,
appending. The turn has the peers' shape: one user message and K=5 tool round-trips
(6 LLM steps + 5 tool steps = 11 steps, chained in one invocation as the step function chains
them). Per step = the turn's time / 11.

For each history length H (10, 100, 1000 events already in the thread) three cases:
- cold, no snapshot: a new process (empty view cache) that reads the thread whole;
- cold, with snapshot: a new process that reads the thread's last snapshot and the events after
  it (the snapshot is half an interval behind the head, the average a cold reader meets, or
  where the engine writes its first one);
- warm: the process that drove the thread's previous turn, reading only the new message.
All threads are grown first; then each round runs one turn of every case at every H, each
followed by a block of raw `SELECT message_store.write_message(...)` commits with
`expected_version` on the same pool. So every figure is measured in the same minutes, and a
machine (or database) whose speed drifts while the benchmark runs slows all of them alike.
Per-step figures are divided by the p50 of those raw commits; the "paired" column divides
each turn by the block measured right after it and takes the median.

Targets: per step at H=10 (cold) <= 2.5x one raw commit; cold per step at H=1000 (with
snapshot) <= 1.5x cold per step at H=10, as the median over rounds of the H=1000 turn over the
H=10 turn of the same round (seconds apart).

The process tunes its garbage collector as the step function does at cold start
(`Runtime.tune_collector`).

Env: HISTORY (10,100,1000), TURNS (20 measured rounds), K (5), CHAIN (50)
Writes the figures as JSON to $BENCH_OUT when set (used by bench/compare.py).
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import orjson

from _common import Figures, bench_database, row
from messagedb_agent.engine.cache import ViewCache
from messagedb_agent.engine.snapshot import Snapshots
from messagedb_agent.engine.step import Engine
from messagedb_agent.engine.view import ThreadView
from messagedb_agent.events import ToolCall
from messagedb_agent.llm.types import (
    LLMConfig,
    LLMResponse,
    Message,
    ToolResult,
    ToolSpec,
    UserTurn,
)
from messagedb_agent.runtime import Runtime, build_engine
from messagedb_agent.settings import Settings
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.commands import add_message, fork_thread, start_thread
from messagedb_agent.threads.reading import read_thread

HISTORY = [int(h) for h in os.environ.get("HISTORY", "10,100,1000").split(",")]
TURNS = int(os.environ.get("TURNS", "20"))
K = int(os.environ.get("K", "5"))
# steps one invocation may run in a row (1 = every step is its own delivery)
CHAIN = int(os.environ.get("CHAIN", "50"))
RAW_BLOCK = 10  # raw commits measured after each turn
TARGET_STEP_VS_COMMIT = 2.5
TARGET_COLD_GROWTH = 1.5

RAW_WRITE = "SELECT message_store.write_message(%s, %s, %s, %s::jsonb, %s::jsonb, %s)"


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


class RawCommits:
    """One raw `write_message` with expected_version per sample: the unit every figure uses."""

    def __init__(self, store: MessageStore) -> None:
        self.store = store
        self.samples: list[float] = []
        self.stream = f"thread-{uuid.uuid4()}"
        self.version = -1
        self.data = orjson.dumps({"message": "do the five things " * 4}).decode()
        self.meta = orjson.dumps({"userId": "bench-user", "schemaVersion": 1}).decode()

    def block(self, count: int = RAW_BLOCK, keep: bool = True) -> float:
        """Measure `count` raw commits; the p50 of this block, in ms."""
        block: list[float] = []
        for _ in range(count):
            params = (str(uuid.uuid4()), self.stream, "X", self.data, self.meta, self.version)
            start = time.perf_counter()
            with self.store.pool.connection() as conn:
                conn.execute(RAW_WRITE, params).fetchone()
            elapsed = (time.perf_counter() - start) * 1000
            self.version += 1
            block.append(elapsed)
        if keep:
            self.samples.extend(block)
        return Figures(block).p50

    @property
    def p50(self) -> float:
        return Figures(self.samples).p50


def run_turn(engine: Engine, model: PeerShapeModel, store: MessageStore, thread: str) -> float:
    """One turn; returns the engine's time per step in ms (model time excluded)."""
    appended = add_message(
        store, thread, owner="bench-user", message="do the five things", now=datetime.now(UTC)
    )
    current = appended.notification
    total, steps = 0.0, 0
    while True:
        before = model.seconds
        start = time.perf_counter()
        result = engine.advance(current, max_steps=CHAIN)
        total += time.perf_counter() - start - (model.seconds - before)
        steps += result.steps
        if not result.follow_ups:
            break
        current = result.follow_ups[-1]
    return total * 1000 / max(steps, 1)


def grow(
    engine: Engine,
    model: PeerShapeModel,
    store: MessageStore,
    stream: str,
    thread: str,
    events: int,
) -> None:
    while (store.stream_version(stream) or 0) + 1 < events:
        run_turn(engine, model, store, thread)


def snapshot_behind(snapshots: Snapshots, store: MessageStore, stream: str, head: int) -> None:
    """A snapshot of `stream` half an interval behind `head` (the average distance a cold
    reader meets), never earlier than the engine writes its first one."""
    first = snapshots.interval - 1
    if head < first:
        return  # too short to have one
    at = max(head - snapshots.interval // 2, first)
    snapshots.save(ThreadView(read_thread(store, stream, to_position=at)))


CASES = ("cold, no snapshot", "cold, with snapshot", "warm (cached view)")


@dataclass
class Thread:
    """One history length's threads: a fork of the grown thread per cold turn (made before
    any turn is measured, so no turn runs right after a bulk write), and the warm one."""

    history: int
    length: int
    cold: dict[str, list[str]]  # case -> one fork per round
    warm: str
    warm_views: ViewCache


def prepare(
    engine: Engine, model: PeerShapeModel, store: MessageStore, snapshots: Snapshots, history: int
) -> Thread:
    template = start_thread(store, owner="bench-user", message=None, now=datetime.now(UTC))
    grow(engine, model, store, template.stream_name, template.thread_id, history)
    length = (store.stream_version(template.stream_name) or 0) + 1
    cold: dict[str, list[str]] = {}
    for case in CASES[:2]:
        for _ in range(TURNS + 2):
            fork = fork_thread(store, template.thread_id, owner="bench-user", at=length - 1)
            if case == "cold, with snapshot":
                snapshot_behind(snapshots, store, fork.stream_name, length - 1)
            cold.setdefault(case, []).append(fork.thread_id)
    warm = fork_thread(store, template.thread_id, owner="bench-user", at=length - 1)
    views = ViewCache()
    engine.views, engine.snapshots = views, snapshots
    run_turn(engine, model, store, warm.thread_id)  # its process now holds the view
    return Thread(history, length, cold, warm.thread_id, views)


def one_turn(
    engine: Engine,
    model: PeerShapeModel,
    store: MessageStore,
    snapshots: Snapshots,
    thread: Thread,
    case: str,
    round_: int,
) -> float:
    if case == "warm (cached view)":
        engine.views, engine.snapshots = thread.warm_views, snapshots
        return run_turn(engine, model, store, thread.warm)
    engine.views = ViewCache()  # a new process holds no views
    engine.snapshots = snapshots if case == "cold, with snapshot" else None
    return run_turn(engine, model, store, thread.cold[case][round_])


def main() -> None:
    url = bench_database("bench_step")
    settings = Settings(database_url=url, model_name="offline")
    print(
        f"step benchmark: turns of 1 user message + {K} tool round-trips (11 steps, chained),"
        f" instant model, {TURNS} rounds; per step = turn / 11, model time excluded"
    )
    samples: dict[tuple[int, str], list[float]] = {}
    paired: dict[tuple[int, str], list[float]] = {}
    with MessageStore(url, min_size=1, max_size=2) as store:
        model = PeerShapeModel()
        engine = build_engine(settings, store, llm=model)
        Runtime.tune_collector()
        snapshots = engine.snapshots
        assert snapshots is not None
        threads = [prepare(engine, model, store, snapshots, history) for history in HISTORY]
        raw = RawCommits(store)
        raw.block(30, keep=False)  # past psycopg's auto-prepare threshold
        for round_ in range(TURNS + 2):
            for thread in threads:
                for case in CASES:
                    per_step = one_turn(engine, model, store, snapshots, thread, case, round_)
                    block = raw.block()
                    if round_ >= 2:  # the first two warm up the statements, whatever the case
                        samples.setdefault((thread.history, case), []).append(per_step)
                        paired.setdefault((thread.history, case), []).append(per_step / block)
        lengths = {thread.history: thread.length for thread in threads}
    commit = Figures(raw.samples)
    print("\n" + row("raw write_message commit (baseline)", commit))
    results: dict[str, dict[str, float]] = {}
    for history in HISTORY:
        print(f"\nH={history} (thread had {lengths[history]} events before each measured turn)")
        for case in CASES:
            figures = Figures(samples[(history, case)])
            print(
                f"{row(f'step, {case}', figures)}   {figures.p50 / commit.p50:5.2f}x commit"
                f"   (paired {Figures(paired[(history, case)]).p50:.2f}x)"
            )
        cold_full, cold_snap, warm = (Figures(samples[(history, case)]) for case in CASES)
        results[str(history)] = {
            "step_p50_ms": cold_snap.p50,
            "cold_full_step_p50_ms": cold_full.p50,
            "warm_step_p50_ms": warm.p50,
            "step_p99_ms": cold_snap.p99,
            "turn_p50_ms": cold_snap.p50 * (2 * K + 1),
            "raw_commit_p50_ms": commit.p50,
            "events_before": lengths[history],
            "cold_full_paired_ratio": Figures(paired[(history, "cold, no snapshot")]).p50,
            "warm_paired_ratio": Figures(paired[(history, "warm (cached view)")]).p50,
        }
    print_targets(results, samples)
    if out := os.environ.get("BENCH_OUT"):
        Path(out).write_text(json.dumps(results))


def print_targets(
    results: dict[str, dict[str, float]], samples: dict[tuple[int, str], list[float]]
) -> None:
    print("\ntargets")
    first, last = HISTORY[0], HISTORY[-1]
    base = results[str(first)]
    ratio = base["cold_full_step_p50_ms"] / base["raw_commit_p50_ms"]
    warm = base["warm_step_p50_ms"] / base["raw_commit_p50_ms"]
    verdict = "PASS" if ratio <= TARGET_STEP_VS_COMMIT else "MISS"
    print(
        f"  per step at H={first} (cold) / one raw commit: {ratio:5.2f}x"
        f"  (target <= {TARGET_STEP_VS_COMMIT}x: {verdict}; warm {warm:.2f}x;"
        f" paired: cold {base['cold_full_paired_ratio']:.2f}x, warm {base['warm_paired_ratio']:.2f}x)"
    )
    # per round: the long thread's turn over the short thread's, run seconds apart
    cold = samples[(first, "cold, no snapshot")]

    def growth(case: str) -> float:
        turns = samples[(last, case)]
        return Figures([a / b for a, b in zip(turns, cold, strict=True)]).p50

    with_snapshot, without = growth("cold, with snapshot"), growth("cold, no snapshot")
    verdict = "PASS" if with_snapshot <= TARGET_COLD_GROWTH else "MISS"
    print(
        f"  cold per step at H={last} (with snapshot) / at H={first}: {with_snapshot:5.2f}x"
        f"  (target <= {TARGET_COLD_GROWTH}x: {verdict}; without a snapshot {without:.2f}x;"
        f" warm {growth('warm (cached view)'):.2f}x)"
    )


if __name__ == "__main__":
    main()
