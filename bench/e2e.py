"""End-to-end benchmark: a chat turn through the local serverless stack, as a front-end sees it.

The stack is the one `make stack` runs (Message DB, the Pub/Sub emulator where gcloud and Java
are installed, ingest/relay/step under functions-framework) with the instant offline model,
so what is measured is the machinery: HTTP, the append, Pub/Sub, the step protocol.

The turn is "what is 2+2": one model call that asks for `calculate`, the tool, and the model's
answer. Measured, in one run:
- turn latency: POST ...?wait= until the answer is in the response, p50/p99 (target: p50 <=
  150 ms, p99 <= 500 ms), and from the event times the part after ingest's append (user
  message appended -> reply appended);
- where the time goes, from the event times (PostgreSQL's clock, transaction start): publish +
  delivery (the user message's append -> the step's first claim), the step (first claim ->
  reply), gaps where a follow-up went back through Pub/Sub; ingest (a POST without `wait`,
  timed by the client); the database (a raw `write_message` commit and a raw read of a
  turn-sized stream, timed now, on the same server);
- sustained turns/s with THREADS users chatting at once, each in their own thread.

Env: TURNS (50 measured turns per series), THREADS (20), LOAD_TURNS (5 turns per thread under
load), TURNS_PER_THREAD (5: a thread is replaced after this many, so history stays short).
Writes the figures as JSON to $BENCH_OUT when set.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import httpx

from _common import Figures, bench_database, row, timed
from messagedb_agent.config import Settings
from messagedb_agent.stack import LocalStack, StackOptions
from messagedb_agent.store import MessageStore

TURNS = int(os.environ.get("TURNS", "50"))
THREADS = int(os.environ.get("THREADS", "20"))
LOAD_TURNS = int(os.environ.get("LOAD_TURNS", "5"))
TURNS_PER_THREAD = int(os.environ.get("TURNS_PER_THREAD", "5"))
WARMUP = 5
QUESTION = "what is 2+2"
ANSWER = "2+2 = 4"
WAIT = 10.0
P50_TARGET_MS = 150.0
P99_TARGET_MS = 500.0

FUNCTION_ENV = {
    "MODEL_NAME": "offline",
    "GOOGLE_CLOUD_PROJECT": "",
    "RATE_LIMIT_PER_MINUTE": "0",  # off: the benchmark is one user posting as fast as it can
}
RAW_WRITE = "SELECT message_store.write_message(%s, %s, 'BenchWrite', '{}'::jsonb, NULL, %s)"
RAW_READ = "SELECT * FROM message_store.get_stream_messages(%s, 0, 1000)"


@dataclass(frozen=True)
class TurnTimes:
    """One turn, from its events: PostgreSQL's transaction-start times, in milliseconds."""

    pipeline: float  # user message appended -> reply appended
    delivery: float  # user message appended -> the step's first claim
    step: float  # first claim -> reply appended
    hops: float  # follow-ups that went back through Pub/Sub inside the turn
    commits: int  # transactions that wrote the turn's events

    @classmethod
    def of(cls, events: list[dict[str, Any]], position: int) -> TurnTimes:
        turn = [e for e in events if e["position"] >= position]
        times = [datetime.fromisoformat(e["time"]) for e in turn]
        said = times[0]
        claims = [i for i, e in enumerate(turn) if e["type"].endswith("Requested")]
        first = times[claims[0]]
        reply = times[-1]
        hops = sum(
            (times[i] - times[i - 1]).total_seconds()
            for i in claims[1:]
            if times[i] != times[i - 1]  # chained claims share their results' transaction
        )
        return cls(
            pipeline=_ms(reply - said),
            delivery=_ms(first - said),
            step=_ms(reply - first),
            hops=hops * 1000,
            commits=len(set(times)),
        )


@dataclass(frozen=True)
class Handover:
    """A turn posted without `wait`, around the moment the POST returned (same host clock)."""

    publish: float  # user message appended -> POST returned (ingest's publish confirmed)
    delivery: float  # POST returned -> the step's first claim
    reply: float  # POST returned -> reply appended

    @classmethod
    def of(cls, events: list[dict[str, Any]], position: int, returned: datetime) -> Handover:
        turn = [e for e in events if e["position"] >= position]
        said = datetime.fromisoformat(turn[0]["time"])
        first = next(e for e in turn if e["type"].endswith("Requested"))
        reply = datetime.fromisoformat(turn[-1]["time"])
        return cls(
            publish=_ms(returned - said),
            delivery=_ms(datetime.fromisoformat(first["time"]) - returned),
            reply=_ms(reply - returned),
        )


def _ms(delta: Any) -> float:
    return float(delta.total_seconds() * 1000)


class User:
    """One front-end session: a token, a keep-alive client, a thread replaced now and then."""

    def __init__(self, stack: LocalStack, name: str) -> None:
        token = stack.dev_token(name)
        self.http = httpx.Client(
            base_url=stack.urls["ingest"],
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        self.thread_id = ""
        self.turns = 0

    def _thread(self) -> str:
        if not self.thread_id or self.turns >= TURNS_PER_THREAD:
            self.thread_id = _ok(self.http.post("/v1/threads", json={}), 201)["thread_id"]
            self.turns = 0
        self.turns += 1
        return self.thread_id

    def ask(self) -> tuple[float, int]:
        """One turn with `?wait=`: (client latency in ms, the message's position)."""
        thread = self._thread()
        start = time.perf_counter()
        answer = _ok(
            self.http.post(
                f"/v1/threads/{thread}/messages", params={"wait": WAIT}, json={"message": QUESTION}
            )
        )
        elapsed = (time.perf_counter() - start) * 1000
        assert answer["reply"]["text"].endswith(ANSWER), answer
        return elapsed, int(answer["position"])

    def post(self) -> tuple[float, datetime, int]:
        """One turn without waiting: (ingest ms, when the POST returned, message position).

        The reply is awaited before returning, untimed, so the next turn starts on a quiet thread.
        """
        thread = self._thread()
        start = time.perf_counter()
        answer = _ok(
            self.http.post(f"/v1/threads/{thread}/messages", json={"message": QUESTION}), 202
        )
        returned = datetime.now(UTC)
        elapsed = (time.perf_counter() - start) * 1000
        position = int(answer["position"])
        self._await_reply(thread, position)
        return elapsed, returned, position

    def _await_reply(self, thread: str, position: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events(position):
                if event["type"] == "LLMResponseReceived" and not event["data"]["tool_calls"]:
                    return
            time.sleep(0.02)
        raise RuntimeError(f"no reply in thread {thread} after position {position}")

    def events(self, after: int) -> list[dict[str, Any]]:
        page = _ok(
            self.http.get(
                f"/v1/threads/{self.thread_id}/events", params={"after": after - 1, "limit": 500}
            )
        )
        events: list[dict[str, Any]] = page["events"]
        return events

    def close(self) -> None:
        self.http.close()


def _ok(response: httpx.Response, status: int = 200) -> Any:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text[:300]}"
        )
    return response.json()


def verdict(value: float, target: float) -> str:
    return f"(target <= {target:g} ms: {'meets' if value <= target else 'MISSES'})"


def p50_row(label: str, samples: list[float]) -> str:
    figures = Figures(samples)
    return f"  {label:<44} p50 {figures.p50:7.1f} ms   p99 {figures.p99:7.1f} ms"


def database_floor(url: str, stream_len: int) -> tuple[Figures, Figures]:
    """A raw write_message commit (expected_version), and a raw read of a turn-sized stream."""
    scratch = f"benchWrite-{uuid.uuid4()}"
    read_stream = f"benchRead-{uuid.uuid4()}"
    writes: list[float] = []
    reads: list[float] = []
    with MessageStore(url, min_size=1, max_size=1) as store:
        for version in range(stream_len):
            with store.pool.connection() as conn:
                conn.execute(RAW_WRITE, (str(uuid.uuid4()), read_stream, version - 1)).fetchone()

        def write(version: int) -> None:
            with store.pool.connection() as conn:
                conn.execute(RAW_WRITE, (str(uuid.uuid4()), scratch, version - 1)).fetchone()

        def read() -> None:
            with store.pool.connection() as conn:
                conn.execute(RAW_READ, (read_stream,)).fetchall()

        for version in range(200):
            sample = timed(lambda version=version: write(version))
            if version >= 20:  # past warm-up and psycopg's auto-prepare threshold
                writes.append(sample)
            sample = timed(read)
            if version >= 20:
                reads.append(sample)
    return Figures(writes), Figures(reads)


@dataclass
class Run:
    stack: LocalStack
    users: list[User]

    def user(self) -> User:
        user = User(self.stack, f"bench-{uuid.uuid4().hex[:8]}")
        self.users.append(user)
        return user


@contextmanager
def running(url: str) -> Iterator[Run]:
    options = StackOptions(
        ingest_port=0,
        relay_port=0,
        step_port=0,
        emulator_port=0,
        local_topic_port=0,
        database_url=url,
        env=FUNCTION_ENV,
    )
    with LocalStack(Settings(database_url=url), options, out=io.StringIO()) as stack:
        run = Run(stack, [])
        try:
            yield run
        finally:
            for user in run.users:
                user.close()


def main() -> None:
    url = bench_database("bench_e2e")
    print(
        f"end-to-end benchmark: '{QUESTION}' turns (model -> calculate -> model), instant "
        f"offline model; {TURNS} turns per series, {THREADS} threads x {LOAD_TURNS} under load"
    )
    with running(url) as run:
        stack = run.stack
        transport = (
            f"Pub/Sub emulator at {stack.emulator_host}"
            if stack.transport == "emulator"
            else "BUILT-IN topic (gcloud or java missing: not the Pub/Sub emulator)"
        )
        print(f"transport: {transport}")
        user = run.user()
        for _ in range(WARMUP):
            user.ask()
            user.post()

        latencies: list[float] = []
        turns: list[TurnTimes] = []
        for _ in range(TURNS):
            elapsed, position = user.ask()
            latencies.append(elapsed)
            turns.append(TurnTimes.of(user.events(position), position))
        ingest: list[float] = []
        handovers: list[Handover] = []
        for _ in range(TURNS):
            elapsed, returned, position = user.post()
            ingest.append(elapsed)
            handovers.append(Handover.of(user.events(position), position, returned))

        crowd = [run.user() for _ in range(THREADS)]
        for member in crowd:
            member.ask()  # each has its thread before the clock starts

        def chat(member: User) -> list[float]:
            return [member.ask()[0] for _ in range(LOAD_TURNS)]

        start = time.perf_counter()
        with ThreadPoolExecutor(THREADS) as pool:
            loaded = [ms for samples in pool.map(chat, crowd) for ms in samples]
        wall = time.perf_counter() - start
    write, read = database_floor(url, stream_len=8)

    turn = Figures(latencies)
    pipeline = Figures([t.pipeline for t in turns])
    delivery = Figures([t.delivery for t in turns])
    step = Figures([t.step for t in turns])
    hops = Figures([t.hops for t in turns])
    ingest_fig = Figures(ingest)
    published = Figures([h.publish for h in handovers])
    delivered = Figures([h.delivery for h in handovers])
    answered = Figures([h.reply for h in handovers])
    load = Figures(loaded)
    commits = round(sum(t.commits for t in turns) / len(turns))
    per_second = len(loaded) / wall

    print(f"\none-tool turn, one user ({TURNS} turns)")
    print(f"{p50_row('POST ?wait= -> reply in the response', latencies)}")
    print(
        f"  {'':<44} p50 {verdict(turn.p50, P50_TARGET_MS)}  p99 {verdict(turn.p99, P99_TARGET_MS)}"
    )
    print(p50_row("user message appended -> reply appended", pipeline.samples_ms))
    print(p50_row("POST (no wait) returned -> reply appended", answered.samples_ms))
    print("\nwhere the time goes (p50 of each part; event times are PostgreSQL's)")
    print(p50_row("ingest: POST without wait (client-timed)", ingest_fig.samples_ms))
    print(p50_row("publish + delivery: append -> first claim", delivery.samples_ms))
    print(p50_row("  publish: append -> POST returned", published.samples_ms))
    print(p50_row("  delivery: POST returned -> first claim", delivered.samples_ms))
    print(p50_row("step: first claim -> reply appended", step.samples_ms))
    print(p50_row("  of which follow-ups back through Pub/Sub", hops.samples_ms))
    print(row("database: raw write_message, one commit", write))
    print(row("database: raw read of an 8-event stream", read))
    print(
        f"  {'database floor: ' + str(commits) + ' commits in a turn x raw commit':<44} "
        f"    {commits * write.p50:7.1f} ms"
    )
    rest = turn.p50 - pipeline.p50
    print(
        f"  {'rest: HTTP, auth, ingest append, wait polling':<44}     {rest:7.1f} ms "
        "(turn p50 - pipeline p50)"
    )
    print(f"\n{THREADS} threads chatting at once ({len(loaded)} turns)")
    print(f"  {'sustained':<44} {per_second:7.1f} turns/s")
    print(p50_row("turn latency under load", load.samples_ms))

    figures = {
        "transport": stack.transport,
        "turn_p50_ms": turn.p50,
        "turn_p99_ms": turn.p99,
        "turn_p50_meets": turn.p50 <= P50_TARGET_MS,
        "turn_p99_meets": turn.p99 <= P99_TARGET_MS,
        "pipeline_p50_ms": pipeline.p50,
        "pipeline_p99_ms": pipeline.p99,
        "ingest_p50_ms": ingest_fig.p50,
        "ingest_p99_ms": ingest_fig.p99,
        "publish_delivery_p50_ms": delivery.p50,
        "publish_p50_ms": published.p50,
        "delivery_p50_ms": delivered.p50,
        "post_returned_to_reply_p50_ms": answered.p50,
        "post_returned_to_reply_p99_ms": answered.p99,
        "step_p50_ms": step.p50,
        "followup_hops_p50_ms": hops.p50,
        "db_write_p50_ms": write.p50,
        "db_read_p50_ms": read.p50,
        "commits_per_turn": commits,
        "load_threads": THREADS,
        "load_turns_per_second": per_second,
        "load_turn_p50_ms": load.p50,
        "load_turn_p99_ms": load.p99,
    }
    if out := os.environ.get("BENCH_OUT"):
        Path(out).write_text(json.dumps(figures))


if __name__ == "__main__":
    main()
