"""Many users chatting at once through the local serverless stack, for bench/scale.py.

One stack per THREAD_SHARDS setting (the functions read it from their environment when they
start), each on a database of its own: Message DB, the Pub/Sub emulator where gcloud and Java
are installed (else the built-in topic), ingest/relay/step under functions-framework, the
instant offline model. Each user has a dev token and a thread of their own, and asks one
question after another with `POST /v1/threads/{id}/messages?wait=`; a turn is one model call
asking for `calculate`, the tool, and the model's answer.
"""

from __future__ import annotations

import io
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from messagedb_agent.settings import Settings
from messagedb_agent.stack import LocalStack, StackOptions

QUESTION = "what is 12*(3+4)"
ANSWER = "84"
WAIT = 30.0


@dataclass(frozen=True)
class LoadRun:
    users: int
    shards: int
    turns: int
    seconds: float
    latencies_ms: list[float]
    unanswered: int  # answered 202: no reply within WAIT
    failed: Counter[str]  # any other status, or a broken connection, by kind

    @property
    def turns_per_second(self) -> float:
        return self.turns / self.seconds

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")

    @property
    def p99(self) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


@contextmanager
def stack_running(url: str, shards: int, env: Mapping[str, str]) -> Iterator[LocalStack]:
    """The local stack on `url`, its functions started with THREAD_SHARDS=`shards`."""
    options = StackOptions.on_free_ports(
        database_url=url,
        env={**env, "THREAD_SHARDS": str(shards)},
    )
    with LocalStack(Settings(), options, out=io.StringIO()) as stack:
        yield stack


class User:
    """A front-end session: a token, a keep-alive client, one thread."""

    def __init__(self, stack: LocalStack) -> None:
        self.base_url = stack.urls["ingest"]
        self.token = stack.dev_token(f"scale-{uuid.uuid4().hex[:8]}")
        self.http = self._client()
        created = self.http.post("/v1/threads", json={})
        if created.status_code != 201:
            raise RuntimeError(f"POST /v1/threads: {created.status_code} {created.text[:300]}")
        self.thread_id = str(created.json()["thread_id"])

    def _client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=WAIT + 30,
        )

    def reconnect(self) -> None:
        """A fresh client, for a connection the server may have closed while it sat idle."""
        self.http.close()
        self.http = self._client()

    def ask(self) -> tuple[int, float]:
        """One turn: (the status, the client's latency in ms)."""
        start = time.perf_counter()
        answer = self.http.post(
            f"/v1/threads/{self.thread_id}/messages",
            params={"wait": WAIT},
            json={"message": QUESTION},
        )
        elapsed = (time.perf_counter() - start) * 1000
        if answer.status_code == 200 and ANSWER not in answer.json()["reply"]["text"]:
            raise RuntimeError(f"unexpected reply: {answer.text[:300]}")
        return answer.status_code, elapsed

    def close(self) -> None:
        self.http.close()


def drive(stack: LocalStack, users: int, shards: int, seconds: float) -> LoadRun:
    """`users` users asking turn after turn for `seconds`; the turns that end inside count.

    Each user makes their thread and takes one turn first, all at once, then opens a fresh
    connection when the clock starts (the functions close keep-alive connections idle for a
    couple of seconds, and the warm-up of 64 users takes longer than that).
    """
    members: list[User | None] = [None] * users
    latencies: list[list[float]] = [[] for _ in range(users)]
    unanswered = [0] * users
    failed: Counter[str] = Counter()
    errors: list[BaseException] = []
    gate = threading.Barrier(users + 1)
    stop = threading.Event()
    end = [0.0]

    def work(index: int) -> None:
        try:
            member = members[index] = User(stack)
            status, _ = member.ask()
            if status != 200:
                raise RuntimeError(f"warm-up turn answered {status}")
            gate.wait()
        except BaseException as exc:
            errors.append(exc)
            gate.abort()
            return
        member.reconnect()  # it waited for the others' warm-up
        try:
            while not stop.is_set():
                try:
                    status, elapsed = member.ask()
                except httpx.TransportError as exc:
                    if time.perf_counter() <= end[0]:
                        failed[type(exc).__name__] += 1
                    continue
                if time.perf_counter() > end[0]:
                    return  # ended after the window: not counted
                if status == 200:
                    latencies[index].append(elapsed)
                elif status == 202:
                    unanswered[index] += 1
                else:
                    failed[str(status)] += 1
        except BaseException as exc:  # surfaced below, never swallowed
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(users)]
    try:
        for worker in workers:
            worker.start()
        try:
            gate.wait()
        except threading.BrokenBarrierError:
            pass
        else:
            start = time.perf_counter()
            end[0] = start + seconds
            time.sleep(seconds)
        stop.set()
        for worker in workers:
            worker.join()
    finally:
        for member in members:
            if member is not None:
                member.close()
    if errors:
        raise errors[0]
    samples = [ms for per_user in latencies for ms in per_user]
    return LoadRun(users, shards, len(samples), seconds, samples, sum(unanswered), failed)
