"""End-to-end benchmark: a chat turn through the local serverless stack, as a front-end sees it.

The stack is the one `make stack` runs (Message DB, the Pub/Sub emulator where gcloud and Java
are installed, ingest/relay/step under functions-framework) with the instant offline model,
so what is measured is the machinery: HTTP, the append, Pub/Sub, the step protocol.

The turn is "what is 2+2": one model call that asks for `calculate`, the tool, and the model's
answer. Measured, in one run:
- turn latency: POST ...?wait= until the answer is in the response, p50/p99 (target: p50 <=
  150 ms, p99 <= 500 ms); from the event times, user message appended -> reply appended; and
  for turns posted without `wait`, the moment the POST returned -> reply appended;
- where the time goes, from the event times (PostgreSQL's clock, transaction start; the client
  runs on the same host, so its clock is the same): ingest (a POST without `wait`, timed by
  the client); publish (append -> POST returned, which waits for Pub/Sub's confirmation);
  delivery (POST returned -> the step's first claim), beside the emulator alone (publish ->
  push to an endpoint that does nothing); the step (first claim -> reply), and within it any
  follow-up that went back through Pub/Sub; the database (a raw `write_message` commit and a
  raw read of a turn-sized stream, timed in this run on the same server);
- sustained turns/s with THREADS users chatting at once, each in their own thread.

Env: TURNS (50 measured turns per series), THREADS (20), LOAD_TURNS (5 turns per thread under
load), TURNS_PER_THREAD (5: a thread is replaced after this many, so history stays short).
Writes the figures as JSON to $BENCH_OUT when set.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import io
import json
import os
import random
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import grpc  # type: ignore[import-untyped]
import httpx
from google.cloud import pubsub_v1  # type: ignore[import-untyped]
from google.pubsub_v1 import types
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

from _common import Figures, bench_database, row, timed
from messagedb_agent.pubsub.publisher import BATCH_MAX_LATENCY_SECONDS, BATCH_MAX_MESSAGES
from messagedb_agent.settings import Settings
from messagedb_agent.stack import LocalStack, StackOptions
from messagedb_agent.stack.emulator import admin_clients
from messagedb_agent.store.client import MessageStore

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
    return f"(target <= {target:g}: {'meets' if value <= target else 'MISSES'})"


def target_row(label: str, figures: Figures) -> str:
    return (
        f"  {label:<44} p50 {figures.p50:7.1f} ms {verdict(figures.p50, P50_TARGET_MS)}   "
        f"p99 {figures.p99:7.1f} ms {verdict(figures.p99, P99_TARGET_MS)}"
    )


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
            sample = timed(functools.partial(write, version))
            if version >= 20:  # past warm-up and psycopg's auto-prepare threshold
                writes.append(sample)
            sample = timed(read)
            if version >= 20:
                reads.append(sample)
    return Figures(writes), Figures(reads)


class PushSink:
    """An HTTP endpoint that notes when each pushed message arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                sink.arrived[base64.b64decode(body["message"]["data"]).decode()] = (
                    time.perf_counter()
                )
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def emulator_floor(emulator_host: str, project: str, samples: int = 60) -> tuple[Figures, Figures]:
    """The emulator alone: publish -> confirmed, and publish -> pushed to a bare HTTP endpoint.

    Same client settings as the functions' publisher, a push subscription like the stack's,
    and an endpoint that does nothing, so this is Pub/Sub's own share of a delivery.
    """
    admin, subscriber = admin_clients(emulator_host)
    client = pubsub_v1.PublisherClient(
        batch_settings=pubsub_v1.types.BatchSettings(
            max_messages=BATCH_MAX_MESSAGES, max_latency=BATCH_MAX_LATENCY_SECONDS
        ),
        transport=PublisherGrpcTransport(channel=grpc.insecure_channel(emulator_host)),
    )
    sink = PushSink()
    topic = admin.topic_path(project, f"bench-floor-{uuid.uuid4().hex[:8]}")
    subscription = subscriber.subscription_path(project, f"bench-floor-{uuid.uuid4().hex[:8]}")
    confirmed: list[float] = []
    pushed: list[float] = []
    try:
        admin.create_topic(name=topic)
        subscriber.create_subscription(
            request={
                "name": subscription,
                "topic": topic,
                "push_config": types.PushConfig(push_endpoint=sink.url),
            }
        )
        for i in range(samples + 5):
            start = time.perf_counter()
            client.publish(topic, str(i).encode()).result(timeout=10)
            confirm = time.perf_counter()
            deadline = confirm + 10
            while str(i) not in sink.arrived and time.perf_counter() < deadline:
                time.sleep(0.0005)
            if i >= 5 and str(i) in sink.arrived:
                confirmed.append((confirm - start) * 1000)
                pushed.append((sink.arrived[str(i)] - start) * 1000)
            time.sleep(random.uniform(0, 0.1))  # the emulator pushes on a tick: sample its phase
    finally:
        with contextlib.suppress(Exception):
            subscriber.delete_subscription(subscription=subscription)
        client.stop()
        subscriber.close()
        admin.transport.close()
        sink.close()
    return Figures(confirmed), Figures(pushed)


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
    options = StackOptions.on_free_ports(
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


@dataclass
class Measured:
    latencies: list[float]
    turns: list[TurnTimes]
    ingest: list[float]
    handovers: list[Handover]
    loaded: list[float]
    wall: float
    floor: tuple[Figures, Figures] | None


def one_user(user: User) -> tuple[list[float], list[TurnTimes], list[float], list[Handover]]:
    """TURNS turns with `?wait=`, then TURNS without: latencies, and their event times."""
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
    return latencies, turns, ingest, handovers


def crowd(run: Run) -> tuple[list[float], float]:
    """THREADS users at once, LOAD_TURNS turns each: their latencies and the wall time."""
    members = [run.user() for _ in range(THREADS)]
    for member in members:
        member.ask()  # each has its thread (and a warm connection) before the clock starts

    def chat(member: User) -> list[float]:
        return [member.ask()[0] for _ in range(LOAD_TURNS)]

    start = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        loaded = [ms for samples in pool.map(chat, members) for ms in samples]
    return loaded, time.perf_counter() - start


def report(m: Measured, write: Figures, read: Figures, transport: str) -> dict[str, Any]:
    turn = Figures(m.latencies)
    pipeline = Figures([t.pipeline for t in m.turns])
    delivery = Figures([t.delivery for t in m.turns])
    step = Figures([t.step for t in m.turns])
    hops = Figures([t.hops for t in m.turns])
    ingest = Figures(m.ingest)
    published = Figures([h.publish for h in m.handovers])
    delivered = Figures([h.delivery for h in m.handovers])
    answered = Figures([h.reply for h in m.handovers])
    load = Figures(m.loaded)
    commits = round(sum(t.commits for t in m.turns) / len(m.turns))
    per_second = len(m.loaded) / m.wall

    print(f"\none-tool turn, one user ({TURNS} turns)")
    print(target_row("POST ?wait= -> reply in the response", turn))
    print(p50_row("user message appended -> reply appended", pipeline.samples_ms))
    print(p50_row("POST (no wait) returned -> reply appended", answered.samples_ms))
    print("\nwhere the time goes (event times are PostgreSQL's, on this host's clock)")
    print(p50_row("ingest: POST without wait (client-timed)", ingest.samples_ms))
    print(p50_row("publish + delivery: append -> first claim", delivery.samples_ms))
    print(p50_row("  publish: append -> POST returned", published.samples_ms))
    print(p50_row("  delivery: POST returned -> first claim", delivered.samples_ms))
    if m.floor is not None:
        print(p50_row("    emulator alone: publish -> confirmed", m.floor[0].samples_ms))
        print(p50_row("    emulator alone: publish -> pushed", m.floor[1].samples_ms))
    print(p50_row("step: first claim -> reply appended", step.samples_ms))
    print(p50_row("  of which follow-ups back through Pub/Sub", hops.samples_ms))
    print(row("database: raw write_message, one commit", write))
    print(row("database: raw read of an 8-event stream", read))
    label = f"database floor: {commits} commits in a turn x raw commit"
    print(f"  {label:<44} {commits * write.p50:11.1f} ms")
    label = "rest: HTTP, auth, reads before the append, reply polling"
    print(f"  {label:<44} {turn.p50 - pipeline.p50:11.1f} ms (turn p50 - pipeline p50)")
    print(f"\n{THREADS} threads chatting at once ({len(m.loaded)} turns)")
    print(f"  {'sustained':<44} {per_second:11.1f} turns/s")
    print(target_row("turn latency under load", load))
    return {
        "transport": transport,
        "turn_p50_ms": turn.p50,
        "turn_p99_ms": turn.p99,
        "turn_p50_meets": turn.p50 <= P50_TARGET_MS,
        "turn_p99_meets": turn.p99 <= P99_TARGET_MS,
        "pipeline_p50_ms": pipeline.p50,
        "pipeline_p99_ms": pipeline.p99,
        "post_returned_to_reply_p50_ms": answered.p50,
        "post_returned_to_reply_p99_ms": answered.p99,
        "ingest_p50_ms": ingest.p50,
        "ingest_p99_ms": ingest.p99,
        "publish_delivery_p50_ms": delivery.p50,
        "publish_p50_ms": published.p50,
        "delivery_p50_ms": delivered.p50,
        "emulator_confirm_p50_ms": m.floor[0].p50 if m.floor else None,
        "emulator_push_p50_ms": m.floor[1].p50 if m.floor else None,
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


def main() -> None:
    url = bench_database("bench_e2e")
    print(
        f"end-to-end benchmark: '{QUESTION}' turns (model -> calculate -> model), instant "
        f"offline model; {TURNS} turns per series, {THREADS} threads x {LOAD_TURNS} under load"
    )
    with running(url) as run:
        stack = run.stack
        transport = stack.transport or "none"
        if stack.emulator_host:
            print(f"transport: Pub/Sub emulator at {stack.emulator_host}")
        else:
            print("transport: BUILT-IN topic (gcloud or java missing: not the Pub/Sub emulator)")
        latencies, turns, ingest, handovers = one_user(run.user())
        floor = emulator_floor(stack.emulator_host, stack.project) if stack.emulator_host else None
        loaded, wall = crowd(run)
    write, read = database_floor(url, stream_len=8)
    measured = Measured(latencies, turns, ingest, handovers, loaded, wall, floor)
    figures = report(measured, write, read, transport)
    if out := os.environ.get("BENCH_OUT"):
        Path(out).write_text(json.dumps(figures))


if __name__ == "__main__":
    main()
