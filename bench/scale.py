"""Scale benchmark: many threads at once through the engine, on one thread category or spread
over shards, and the relay catching up on a backlog.

Message DB's `write_message` takes `pg_advisory_xact_lock(hash_64(category))` and holds it until
its transaction commits, so every append to one category waits for the one before it, flush to
disk included. Threads spread over THREAD_SHARDS categories (`thread_00` ..) wait only for
appends to their own shard. Here 8, 32 and 64 threads run turns side by side, in-process, on the
real Message DB with an instant model (a turn: the user's message, one tool round-trip, the
final answer), once with every thread in one category and once over the shards, and the
benchmark prints turns/s and commits/s for each: the ratio is what sharding buys.

Then the relay: a backlog of messages in the thread categories (written straight into the store,
in batches), and the relay's passes timed until it has caught up: messages/s. Publishing is a
counter here, so the figure is the relay's own reading, deciding and recording.

Also printed, for docs/capacity.md: commits and appended events per turn, WAL bytes per turn and
stored bytes per event (pg_total_relation_size of message_store.messages over its rows).

Then the same through the local serverless stack (bench/_stack_load.py): the stack started
once with THREAD_SHARDS=1 and once with THREAD_SHARDS=SHARDS, and 8, 32 and 64 users each asking
"what is 12*(3+4)" turn after turn with `POST /v1/threads/{id}/messages?wait=30` (the offline
model: one `calculate` call, then the answer). Printed: turns/s for 1 vs SHARDS shards and their
ratio, and the turns' p50/p99 latency as the client sees it. On a small machine the functions,
PostgreSQL, the emulator and the users share the same cores, so the ratio shows how much of a
turn's cost is the category lock there; it has no target.

Targets (in-process): the shards give >= 1.8x the turns/s of one category at 64 threads; the
relay reads >= 2,000 messages/s.

Usage: scale.py (everything), scale.py --quick (in-process only), scale.py --stack (the stack
only).

Env: THREADS (8,32,64; also the stack's users), SHARDS (16), SECONDS (6, per run), BACKLOG
(100000), RELAY_POOL (2, the relay function's db_pool_max_size in infra/variables.tf),
TOOL_CALLS (1 per turn); for the stack: STACK_SECONDS (8, per run), STACK_THREADS (request
threads of each function process, functions-framework's THREADS; default the most users, so
every user's request is in flight at once, as Cloud Run instances scaled out would have it),
STACK_POOL (each function's DB_POOL_MAX_SIZE, 5 as deployed for ingest).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import psycopg.conninfo
import psycopg.sql

sys.path.insert(0, str(Path(__file__).parent))

from _common import bench_database
from _stack_load import LoadRun, drive, stack_running
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
from messagedb_agent.notification import Notification
from messagedb_agent.relay import run as relay_run
from messagedb_agent.runtime import build_engine
from messagedb_agent.settings import Settings
from messagedb_agent.store import stream_name as names
from messagedb_agent.store.client import MessageStore
from messagedb_agent.store.message import NewMessage
from messagedb_agent.threads.commands import add_message, start_thread

THREADS = [int(t) for t in os.environ.get("THREADS", "8,32,64").split(",")]
SHARDS = int(os.environ.get("SHARDS", str(names.DEFAULT_THREAD_SHARDS)))
SECONDS = float(os.environ.get("SECONDS", "6"))
BACKLOG = int(os.environ.get("BACKLOG", "100000"))
RELAY_POOL = int(os.environ.get("RELAY_POOL", "2"))
TOOL_CALLS = int(os.environ.get("TOOL_CALLS", "1"))  # tool round-trips per turn
PER_STREAM = 20  # backlog messages per thread stream, written as one batch
STACK_SECONDS = float(os.environ.get("STACK_SECONDS", "8"))
STACK_THREADS = int(os.environ.get("STACK_THREADS", str(max(THREADS))))
STACK_POOL = int(os.environ.get("STACK_POOL", "5"))
STACK_ENV = {
    "MODEL_NAME": "offline",
    "GOOGLE_CLOUD_PROJECT": "",
    "RATE_LIMIT_PER_MINUTE": "0",  # off: every user posts as fast as the answers come
    "THREADS": str(STACK_THREADS),  # functions-framework's; never this benchmark's THREADS
    "DB_POOL_MAX_SIZE": str(STACK_POOL),
}
# Cloud SQL flushes a commit to a network disk (zonal, or two zones with high availability):
# milliseconds, not the tenth of one a local disk takes. PostgreSQL's own `commit_delay`
# (with `commit_siblings = 0`) makes every commit wait that long before its flush, inside
# the transaction, so Message DB's category lock is held as long as it would be there.
FLUSH_MS = float(os.environ.get("FLUSH_MS", "3"))
SHARD_TARGET = 1.8
RELAY_TARGET = 2000.0


class ToolTurnModel:
    """Instant: after each user message TOOL_CALLS echo calls, one at a time, then an answer."""

    def call(
        self, messages: list[Message], tools: list[ToolSpec], config: LLMConfig
    ) -> LLMResponse:
        results = 0
        for message in reversed(messages):
            if isinstance(message, UserTurn):
                break
            if isinstance(message, ToolResult):
                results += 1
        if results >= TOOL_CALLS:
            return LLMResponse(text="done", tool_calls=(), model_name="instant")
        call = ToolCall(id=f"e{results}", name="echo", arguments={"message": "ping"})
        return LLMResponse(text="", tool_calls=(call,), model_name="instant")


class CountingStore(MessageStore):
    """The real store, counting its write transactions (one per call) and the messages."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self._inside = threading.local()
        self.commits = 0
        self.messages = 0

    def _count(self, messages: int) -> None:
        with self._lock:
            self.commits += 1
            self.messages += messages

    def write_message(self, *args: Any, **kwargs: Any) -> int:
        if not getattr(self._inside, "batch", False):
            self._count(1)
        return super().write_message(*args, **kwargs)

    def write_messages(
        self, stream_name: str, messages: Sequence[NewMessage], *args: Any, **kwargs: Any
    ) -> int:
        self._count(len(messages))
        self._inside.batch = True  # a batch of one is written by write_message
        try:
            return super().write_messages(stream_name, messages, *args, **kwargs)
        finally:
            self._inside.batch = False


@dataclass(frozen=True)
class Run:
    threads: int
    shards: int
    turns: int
    seconds: float
    commits: int
    messages: int
    transactions: int  # every transaction the server committed (reads included)
    wal_bytes: int

    @property
    def turns_per_second(self) -> float:
        return self.turns / self.seconds

    @property
    def commits_per_second(self) -> float:
        return self.commits / self.seconds


def _server_counters(store: MessageStore) -> tuple[int, int]:
    with store.connection() as conn:
        row = conn.execute(
            "SELECT xact_commit, pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"
            " FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _turn(engine: Engine, store: MessageStore, thread: str, owner: str) -> None:
    appended = add_message(store, thread, owner=owner, message="ping", now=datetime.now(UTC))
    current: Notification = appended.notification
    while True:
        result = engine.advance(current, max_steps=50)
        if not result.follow_ups:
            return
        current = result.follow_ups[-1]


def flush_like_cloud_sql(url: str, milliseconds: float) -> None:
    """Every commit of the benchmark's database waits `milliseconds` before its WAL flush."""
    database = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(url, autocommit=True) as conn:
        for setting, value in (("commit_delay", int(milliseconds * 1000)), ("commit_siblings", 0)):
            conn.execute(
                psycopg.sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                    psycopg.sql.Identifier(str(database)),
                    psycopg.sql.Identifier(setting),
                    psycopg.sql.Literal(value),
                )
            )


def run_turns(url: str, threads: int, shards: int) -> Run:
    settings = Settings(database_url=url, model_name="offline")
    with CountingStore(url, min_size=threads, max_size=threads, timeout=30) as store:
        engine = build_engine(settings, store, llm=ToolTurnModel())
        owners = [f"scale-{uuid.uuid4().hex[:8]}" for _ in range(threads)]
        started = [
            start_thread(store, owner=o, message=None, now=datetime.now(UTC), shards=shards)
            for o in owners
        ]
        for thread, owner in zip(started, owners, strict=True):  # warm: the first turn each
            _turn(engine, store, thread.thread_id, owner)
        done = [0] * threads
        errors: list[BaseException] = []
        gate = threading.Barrier(threads + 1)
        stop = threading.Event()

        def work(index: int) -> None:
            gate.wait()
            try:
                while not stop.is_set():
                    _turn(engine, store, started[index].thread_id, owners[index])
                    done[index] += 1
            except BaseException as exc:  # surfaced below, never swallowed
                errors.append(exc)

        workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        transactions, wal = _server_counters(store)
        commits, messages = store.commits, store.messages
        gate.wait()
        start = time.perf_counter()
        time.sleep(SECONDS)
        stop.set()
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - start
        commits_after, messages_after = store.commits, store.messages
        transactions_after, wal_after = _server_counters(store)
        if errors:
            raise errors[0]
    return Run(
        threads,
        shards,
        sum(done),
        elapsed,
        commits_after - commits,
        messages_after - messages,
        transactions_after - transactions - 2,  # the two counter reads
        wal_after - wal,
    )


def stored_bytes_per_event(url: str) -> tuple[float, int]:
    with MessageStore(url, min_size=1, max_size=1) as store, store.connection() as conn:
        conn.execute("VACUUM ANALYZE message_store.messages")
        row = conn.execute(
            "SELECT pg_total_relation_size('message_store.messages'), count(*)"
            " FROM message_store.messages"
        ).fetchone()
    assert row is not None
    return int(row[0]) / max(1, int(row[1])), int(row[1])


class CountingPublisher:
    def __init__(self) -> None:
        self.published = 0

    def publish(self, notifications: Sequence[Notification]) -> None:
        self.published += len(notifications)


def relay_catch_up(url: str) -> tuple[int, float, int, int]:
    """(messages read, seconds, passes, notifications) for the relay to catch up on BACKLOG."""
    categories = names.thread_categories(SHARDS)
    with MessageStore(url, min_size=4, max_size=4) as store:
        template = _template_turn(store)
        streams = BACKLOG // len(template)
        for _ in range(streams):
            stream = names.thread_stream(names.new_thread_id(SHARDS))
            batch = [
                NewMessage(type=m.type, data=m.data, metadata=m.metadata, id=str(uuid.uuid4()))
                for m in template
            ]
            store.write_messages(stream, batch, expected_version=-1)
    publisher = CountingPublisher()
    read = passes = 0
    with MessageStore(url, min_size=RELAY_POOL, max_size=RELAY_POOL) as store:
        start = time.perf_counter()
        while True:
            report = relay_run.relay_once(
                store, publisher, datetime.now(UTC), categories=categories, budget_seconds=60
            )
            passes += 1
            read += report.read
            if report.read == 0 or getattr(report, "caught_up", False):
                break
        seconds = time.perf_counter() - start
    return read, seconds, passes, publisher.published


def _template_turn(store: MessageStore) -> list[Any]:
    """The messages of one real thread of PER_STREAM events (the engine's, on the instant
    model), to copy into the backlog's streams."""
    settings = Settings(database_url=store.conninfo, model_name="offline")
    engine = build_engine(settings, store, llm=ToolTurnModel())
    owner = "relay-template"
    thread = start_thread(store, owner=owner, message=None, now=datetime.now(UTC), shards=1)
    while (store.stream_version(thread.stream_name) or 0) + 1 < PER_STREAM:
        _turn(engine, store, thread.thread_id, owner)
    return store.get_stream_messages(thread.stream_name, 0, PER_STREAM)


def in_process() -> None:
    print(
        f"scale benchmark: {', '.join(map(str, THREADS))} threads at once, turns of 1 user "
        f"message + {TOOL_CALLS} tool round-trip(s) on an instant model, {SECONDS:g} s per run; "
        f"1 category vs {SHARDS} shards; commits flushed as this disk does, then "
        f"{FLUSH_MS:g} ms later as on Cloud SQL (commit_delay)"
    )
    runs: dict[tuple[int, int, float], Run] = {}
    urls: dict[tuple[int, int, float], str] = {}
    for flush in (0.0, FLUSH_MS):
        for threads in THREADS:
            for shards in (1, SHARDS):
                key = (threads, shards, flush)
                urls[key] = bench_database(f"bench_scale_{threads}_{shards}_{int(flush * 1000)}")
                if flush:
                    flush_like_cloud_sql(urls[key], flush)
                runs[key] = run_turns(urls[key], threads, shards)
    for flush in (0.0, FLUSH_MS):
        where = "this machine's disk" if not flush else f"+{flush:g} ms per commit (Cloud SQL)"
        print(
            f"\n  flush: {where}\n"
            f"  {'threads':>7}  {'1 category turns/s':>18}  {'commits/s':>9}  "
            f"{f'{SHARDS} shards turns/s':>18}  {'commits/s':>9}  {'ratio':>6}"
        )
        for threads in THREADS:
            one, many = runs[threads, 1, flush], runs[threads, SHARDS, flush]
            ratio = many.turns_per_second / one.turns_per_second
            print(
                f"  {threads:>7}  {one.turns_per_second:18,.1f}  {one.commits_per_second:9,.0f}  "
                f"{many.turns_per_second:18,.1f}  {many.commits_per_second:9,.0f}  {ratio:5.2f}x"
            )
    sample = runs[THREADS[-1], SHARDS, 0.0]
    per_turn = max(1, sample.turns)
    print(
        f"\n  per turn: {sample.commits / per_turn:.1f} write commits, "
        f"{sample.messages / per_turn:.1f} events appended, "
        f"{sample.transactions / per_turn:.1f} server transactions (reads included), "
        f"{sample.wal_bytes / per_turn / 1024:.1f} KiB of WAL"
    )
    per_event, rows = stored_bytes_per_event(urls[THREADS[-1], SHARDS, 0.0])
    print(f"  stored: {per_event:,.0f} bytes per event (table + indexes, {rows:,} events)")

    url = bench_database("bench_scale_relay")
    read, seconds, passes, published = relay_catch_up(url)
    rate = read / seconds
    print(
        f"\n  relay: {read:,} backlog messages read in {seconds:.2f} s ({passes} passes, "
        f"{published:,} notifications, pool of {RELAY_POOL}): {rate:,.0f} messages/s"
    )

    top = THREADS[-1]
    ratio = runs[top, SHARDS, FLUSH_MS].turns_per_second / runs[top, 1, FLUSH_MS].turns_per_second
    shard_verdict = "PASS" if ratio >= SHARD_TARGET else "MISS"
    relay_verdict = "PASS" if rate >= RELAY_TARGET else "MISS"
    print(
        f"\n  {SHARDS} shards vs 1 category at {top} threads, commits flushed as on Cloud SQL: "
        f"{ratio:.2f}x turns/s (target >= {SHARD_TARGET}x): {shard_verdict}"
    )
    print(
        f"  relay catch-up: {rate:,.0f} messages/s (target >= {RELAY_TARGET:,.0f}): {relay_verdict}"
    )


def kinds(failed: Counter[str]) -> str:
    return ", ".join(f"{n} x {kind}" for kind, n in failed.most_common()) or "none"


def through_stack() -> None:
    print(
        f"\nthrough the local stack: {', '.join(map(str, THREADS))} users at once, each asking "
        f"'what is 12*(3+4)' (model -> calculate -> model) with POST ...?wait=30, "
        f"{STACK_SECONDS:g} s per run; THREAD_SHARDS=1 vs {SHARDS}; functions with "
        f"{STACK_THREADS} request threads and {STACK_POOL} pooled connections each"
    )
    runs: dict[tuple[int, int], LoadRun] = {}
    for shards in (1, SHARDS):
        url = bench_database(f"bench_scale_stack_{shards}")
        with stack_running(url, shards, STACK_ENV) as stack:
            if shards == 1:
                transport = (
                    f"the Pub/Sub emulator at {stack.emulator_host}"
                    if stack.emulator_host
                    else "the BUILT-IN topic (gcloud or java missing: not the Pub/Sub emulator)"
                )
                print(f"  transport: {transport}")
            for users in THREADS:
                runs[users, shards] = drive(stack, users, shards, STACK_SECONDS)
    print(
        f"\n  {'users':>7}  {'1 shard turns/s':>15}  {'p50 ms':>7}  {'p99 ms':>7}  "
        f"{f'{SHARDS} shards turns/s':>17}  {'p50 ms':>7}  {'p99 ms':>7}  {'ratio':>6}"
    )
    for users in THREADS:
        one, many = runs[users, 1], runs[users, SHARDS]
        ratio = many.turns_per_second / one.turns_per_second
        print(
            f"  {users:>7}  {one.turns_per_second:15,.1f}  {one.p50:7,.0f}  {one.p99:7,.0f}  "
            f"{many.turns_per_second:17,.1f}  {many.p50:7,.0f}  {many.p99:7,.0f}  {ratio:5.2f}x"
        )
    missed = [(k, r) for k, r in runs.items() if r.unanswered or r.failed]
    for (users, shards), run in missed:
        print(
            f"  {users} users, {shards} shard(s): {run.unanswered} turns without a reply in "
            f"30 s, failed requests: {kinds(run.failed)} (not counted above)"
        )
    cores = os.cpu_count() or 1
    print(
        f"  no target: on {cores} core(s) the functions, PostgreSQL, the emulator and the users "
        "compete for the same CPU, so the ratio is what the category lock costs here, not in Cloud"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--quick", action="store_true", help="in-process only, no stack")
    which.add_argument("--stack", action="store_true", help="through the local stack only")
    args = parser.parse_args()
    if not args.stack:
        in_process()
    if not args.quick:
        through_stack()


if __name__ == "__main__":
    main()
