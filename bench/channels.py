"""Chat channel benchmark: how fast the ingest function acknowledges a platform's request, and
how soon the reply is posted back, against the API's own message append in the same run.

One process serves the ingest API over real HTTP (werkzeug's threaded server, the API built by
`create_api` on a fresh Message DB database, as functions-framework would serve it), with the
Slack endpoints on and the local Slack stand-in (`tests/channels/fake_slack.py`) as Slack's Web
API. Every request is signed as Slack signs it.

- baseline: `POST /v1/threads/{id}/messages` (bearer token, JSON) appending to a thread;
- Slack ack: `POST /v1/channels/slack/events` for a message in an existing conversation, and
  for the first message of a new one (the thread is created too); the clock stops when the
  200 is read. Slack wants it within 3 s; the target here is p50 <= 50 ms;
- a retried delivery (`X-Slack-Retry-Num`) of a message already appended;
- end to end: the request sent -> the reply's `chat.postMessage` received by the stand-in, with
  the offline model, the engine stepping the thread in this process as Pub/Sub would trigger it.

Usage: `python bench/channels.py [--rounds N]`. Writes JSON to $BENCH_OUT when set.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for the tests' stand-in

import httpx
from bench._common import Figures, bench_database, ratio_line, row
from tests.channels.fake_slack import (
    BOT_TOKEN,
    SIGNING_SECRET,
    FakeSlack,
    message_event,
    signed,
)
from werkzeug.serving import make_server

from messagedb_agent.api.app import create_api
from messagedb_agent.api.auth import issue_dev_token
from messagedb_agent.engine.runner import run_until_idle
from messagedb_agent.llm.offline import OfflineModel
from messagedb_agent.notification import Notification
from messagedb_agent.runtime import build_engine
from messagedb_agent.settings import Settings
from messagedb_agent.store.client import MessageStore

SECRET = "bench-secret-" + "x" * 32
ACK_TARGET_MS = 50.0
RETRY = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}


class Publisher:
    """Pub/Sub plus the step function, in this process: off while acks are timed."""

    def __init__(self) -> None:
        self.engine = None
        self.pool = ThreadPoolExecutor(4)

    def publish(self, notifications: Sequence[Notification]) -> None:
        if self.engine is None:
            return
        for notification in notifications:
            self.pool.submit(run_until_idle, self.engine, notification, max_wait=10)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=200, help="requests per measurement")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    slack = FakeSlack(channels={"D0DIRECT01", "C0GENERAL1"}).start()
    url = bench_database("bench_channels")
    settings = Settings().replace(
        database_url=url,
        jwt_hs256_secret=SECRET,
        rate_limit_per_minute=0,
        slack_signing_secret=SIGNING_SECRET,
        slack_bot_token=BOT_TOKEN,
        slack_api_url=slack.api_url,
    )
    store = MessageStore(url, min_size=2, max_size=8).open()
    publisher = Publisher()
    api = create_api(lambda: store, lambda: publisher, settings.serving_api())
    server = make_server("127.0.0.1", 0, api.flask_app(), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    print(f"channels benchmark: ingest at {base}, Slack stand-in at {slack.api_url}")
    figures: dict[str, Figures] = {}
    with httpx.Client(base_url=base, timeout=30) as http:
        token = issue_dev_token(f"bench-{uuid.uuid4().hex[:8]}", SECRET)
        auth = {"Authorization": f"Bearer {token}"}
        thread = http.post("/v1/threads", json={}, headers=auth).json()["thread_id"]

        def api_append(n: int) -> None:
            answer = http.post(
                f"/v1/threads/{thread}/messages", json={"message": f"note {n}"}, headers=auth
            )
            assert answer.status_code == 202, answer.text

        def slack_post(envelope: dict[str, object], **headers: str) -> None:
            body = json.dumps(envelope).encode()
            answer = http.post(
                "/v1/channels/slack/events", content=body, headers={**signed(body), **headers}
            )
            assert answer.status_code == 200, answer.text

        for n in range(20):  # warm both paths: pools, imports, the verifier
            api_append(n)
            slack_post(message_event(f"warm {n}", user="U0WARM0001"))
        user = "U0BENCH001"
        slack_post(message_event("hello", user=user))
        repeats: list[dict[str, object]] = []
        samples: dict[str, list[float]] = {"api": [], "slack": [], "slack_new": [], "retry": []}
        for n in range(args.rounds):
            samples["api"].append(_ms(api_append, n))
            event = message_event(f"note {n}", user=user)
            repeats.append(event)
            samples["slack"].append(_ms(slack_post, event))
            first = message_event("hello", user=f"U{n:09d}")
            samples["slack_new"].append(_ms(slack_post, first))
        for event in repeats[: args.rounds]:
            samples["retry"].append(_ms(slack_post, event, **RETRY))
        figures = {name: Figures(values) for name, values in samples.items()}

        publisher.engine = build_engine(settings, store, OfflineModel())
        turns: list[float] = []
        for n in range(min(30, args.rounds)):
            dm = f"D0E2E{n:05d}"  # each person's DM is a channel of its own, as on Slack
            slack.channels.add(dm)  # (Slack allows about one message a second per channel)
            started = time.perf_counter()
            slack_post(message_event("what is 2+2?", user=f"U0E2E{n:05d}", channel=dm))
            while not slack.in_channel(dm):
                time.sleep(0.001)
            turns.append((time.perf_counter() - started) * 1000)
        figures["turn"] = Figures(turns)
    print(row("API: POST .../messages (baseline)", figures["api"]))
    print(row("Slack: event -> 200, existing conversation", figures["slack"]))
    print(row("Slack: event -> 200, new conversation", figures["slack_new"]))
    print(row("Slack: a retry of an appended event -> 200", figures["retry"]))
    print(row("Slack: event -> reply posted (offline model)", figures["turn"]))
    print(ratio_line("Slack ack against the API append", figures["slack"], figures["api"], 1.5))
    verdict = "meets" if figures["slack"].p50 <= ACK_TARGET_MS else "MISSES"
    print(
        f"  Slack ack p50 {figures['slack'].p50:.1f} ms (target <= {ACK_TARGET_MS:g} ms: {verdict})"
    )
    if out := os.environ.get("BENCH_OUT"):
        Path(out).write_text(
            json.dumps({k: {"p50": v.p50, "p99": v.p99} for k, v in figures.items()}, indent=2)
        )
    server.shutdown()
    publisher.pool.shutdown(wait=True)
    slack.stop()
    store.close()


def _ms(action: Callable[..., None], *args: Any, **kwargs: Any) -> float:
    started = time.perf_counter()
    action(*args, **kwargs)
    return (time.perf_counter() - started) * 1000


if __name__ == "__main__":
    main()
