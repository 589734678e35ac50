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
Each figure is divided by the p50 of one raw `SELECT message_store.write_message(...)` with
`expected_version` (one commit), measured in the same run, on the same pool, in blocks between
the turns, so drift in the machine hits both alike. On a machine whose load swings while the
benchmark runs, the "paired" column is steadier: for each turn, its per-step time over the p50
of the block of raw commits measured right after it, and the median of those ratios.

The three cases of one H run interleaved, a turn of each in turn, so drift hits them alike.

Targets: per step at H=10 (cold) <= 2.5x one raw commit; cold per step at H=1000 (with
snapshot) <= 1.5x cold per step at H=10, both as paired ratios (in raw commits of their own
moment): growing and forking the long thread writes tens of thousands of events, and the
database's commit time drifts between the phases (checkpoints, a larger WAL), so milliseconds
measured minutes apart would count that drift as the engine's. Milliseconds are printed too.

The process freezes its startup heap as the step function does at cold start
(`Runtime.freeze_startup_heap`).

Env: HISTORY (10,100,1000), TURNS (20 measured turns per case), K (5), CHAIN (50)
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


@dataclass(frozen=True)
class Case:
    figures: Figures  # ms per step, one sample per turn
    paired: list[float]  # per turn: its ms per step / the p50 of the raw block right after it

    @property
    def paired_p50(self) -> float:
        return Figures(self.paired).p50


def measure(
    engine: Engine,
    model: PeerShapeModel,
    store: MessageStore,
    raw: RawCommits,
    template: str,
    length: int,
    snapshots: Snapshots,
) -> dict[str, Case]:
    """The three cases, one turn of each in turn: a machine whose speed drifts while the
    benchmark runs slows all three alike, instead of whichever case ran during the drift."""
    warm_views = ViewCache()
    warm = fork_thread(store, template, owner="bench-user", at=length - 1)
    engine.views, engine.snapshots = warm_views, snapshots
    run_turn(engine, model, store, warm.thread_id)  # this process now holds the view
    samples: dict[str, list[float]] = {label: [] for label in CASES}
    paired: dict[str, list[float]] = {label: [] for label in CASES}
    for turn in range(TURNS + 2):
        for label in CASES:
            if label == "warm (cached view)":
                engine.views, engine.snapshots = warm_views, snapshots
                thread = warm.thread_id
            else:
                with_snapshot = label == "cold, with snapshot"
                fork = fork_thread(store, template, owner="bench-user", at=length - 1)
                if with_snapshot:
                    snapshot_behind(snapshots, store, fork.stream_name, length - 1)
                engine.views = ViewCache()  # a new process holds no views
                engine.snapshots = snapshots if with_snapshot else None
                thread = fork.thread_id
            per_step = run_turn(engine, model, store, thread)
            commit = raw.block()
            if turn >= 2:  # the first two warm up the statements, whatever the case
                samples[label].append(per_step)
                paired[label].append(per_step / commit)
    return {label: Case(Figures(samples[label]), paired[label]) for label in CASES}


CASES = ("cold, no snapshot", "cold, with snapshot", "warm (cached view)")


def main() -> None:
    url = bench_database("bench_step")
    settings = Settings(database_url=url, model_name="offline")
    results: dict[str, dict[str, float]] = {}
    print(
        f"step benchmark: turns of 1 user message + {K} tool round-trips (11 steps, chained),"
        f" instant model, {TURNS} turns per case; per step = turn / 11, model time excluded"
    )
    with MessageStore(url, min_size=1, max_size=2) as store:
        raw = RawCommits(store)
        raw.block(30, keep=False)  # past psycopg's auto-prepare threshold
        for history in HISTORY:
            model = PeerShapeModel()
            engine = build_engine(settings, store, llm=model)
            Runtime.freeze_startup_heap()
            snapshots = engine.snapshots
            assert snapshots is not None
            template = start_thread(store, owner="bench-user", message=None, now=datetime.now(UTC))
            grow(engine, model, store, template.stream_name, template.thread_id, history)
            length = (store.stream_version(template.stream_name) or 0) + 1
            start = len(raw.samples)
            cases = measure(engine, model, store, raw, template.thread_id, length, snapshots)
            commit = Figures(raw.samples[start:])
            print(f"\nH={history} (thread had {length} events before each measured turn)")
            print(row("raw write_message commit (baseline)", commit))
            for label, case in cases.items():
                ratio = case.figures.p50 / commit.p50
                print(
                    f"{row(f'step, {label}', case.figures)}   {ratio:5.2f}x commit"
                    f"   (paired {case.paired_p50:.2f}x)"
                )
            cold_full, cold_snap, warm = (case.figures for case in cases.values())
            results[str(history)] = {
                "step_p50_ms": cold_snap.p50,
                "cold_full_step_p50_ms": cold_full.p50,
                "warm_step_p50_ms": warm.p50,
                "step_p99_ms": cold_snap.p99,
                "turn_p50_ms": cold_snap.p50 * (2 * K + 1),
                "raw_commit_p50_ms": commit.p50,
                "events_before": length,
                "cold_full_paired_ratio": cases["cold, no snapshot"].paired_p50,
                "paired_ratio": cases["cold, with snapshot"].paired_p50,
                "warm_paired_ratio": cases["warm (cached view)"].paired_p50,
            }
    print_targets(results)
    if out := os.environ.get("BENCH_OUT"):
        Path(out).write_text(json.dumps(results))


def print_targets(results: dict[str, dict[str, float]]) -> None:
    print("\ntargets")
    first, last = str(HISTORY[0]), str(HISTORY[-1])
    base = results[first]
    ratio = base["cold_full_step_p50_ms"] / base["raw_commit_p50_ms"]
    warm = base["warm_step_p50_ms"] / base["raw_commit_p50_ms"]
    verdict = "PASS" if ratio <= TARGET_STEP_VS_COMMIT else "MISS"
    print(
        f"  per step at H={first} (cold) / one raw commit: {ratio:5.2f}x"
        f"  (target <= {TARGET_STEP_VS_COMMIT}x: {verdict}; warm {warm:.2f}x;"
        f" paired: cold {base['cold_full_paired_ratio']:.2f}x, warm {base['warm_paired_ratio']:.2f}x)"
    )

    # in raw commits of each turn's own moment (paired), so drift between phases cancels
    growth = results[last]["paired_ratio"] / base["cold_full_paired_ratio"]
    without = results[last]["cold_full_paired_ratio"] / base["cold_full_paired_ratio"]
    ms = results[last]["step_p50_ms"] / base["cold_full_step_p50_ms"]
    verdict = "PASS" if growth <= TARGET_COLD_GROWTH else "MISS"
    print(
        f"  cold per step at H={last} (with snapshot) / at H={first}: {growth:5.2f}x"
        f"  (target <= {TARGET_COLD_GROWTH}x: {verdict}; without a snapshot {without:.2f}x;"
        f" in milliseconds {ms:.2f}x)"
    )


if __name__ == "__main__":
    main()
