"""Chat channel benchmark: how fast the ingest function acknowledges each platform's request,
and how soon the reply is posted back, against the API's own message append in the same run.

One process serves the ingest API over real HTTP (werkzeug's threaded server, the API built by
`create_api` on a fresh Message DB database, as functions-framework would serve it), with the
Slack, Telegram and Google Chat endpoints on and the local stand-ins (`tests/channels/fake_*.py`)
as their APIs. Every request is authenticated as the platform does it: Slack's HMAC signature,
Telegram's webhook secret, Google Chat's RS256 bearer token (verified against the stand-in's
published keys, cached after the first).

- baseline: `POST /v1/threads/{id}/messages` (bearer token, JSON) appending to a thread;
- ack, per platform: a message in an existing conversation, and the first message of a new one
  (the thread is created too); the clock stops when the 200 is read. Slack wants it within 3 s
  (Google Chat within 30 s); the target here is p50 <= 50 ms;
- a repeated delivery of a message already appended (Slack's `X-Slack-Retry-Num`);
- end to end: the request sent -> the reply received by the platform's stand-in, with the
  offline model, the engine stepping the thread in this process as Pub/Sub would trigger it
  (Google Chat's reply goes through google-apps-chat, authorised by google-auth).

Usage: `python bench/channels.py [--rounds N]`. Writes JSON to $BENCH_OUT when set.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for the tests' stand-in

import httpx
from bench._common import Figures, bench_database, ratio_line, row
from tests.channels.fake_google_chat import CHAT_BOT_SCOPE, PROJECT_NUMBER, FakeGoogleChat
from tests.channels.fake_google_chat import DM as CHAT_DM
from tests.channels.fake_google_chat import headers as chat_headers
from tests.channels.fake_google_chat import message_event as chat_event
from tests.channels.fake_slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack, signed
from tests.channels.fake_slack import message_event as slack_event
from tests.channels.fake_telegram import PRIVATE_CHAT, FakeTelegram, text_update
from tests.channels.fake_telegram import SECRET as TELEGRAM_SECRET
from tests.channels.fake_telegram import TOKEN as TELEGRAM_TOKEN
from tests.channels.fake_telegram import headers as telegram_headers
from tests.llm.fake_google_auth import FakeTokenEndpoint
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


@dataclass
class Channel:
    """One platform as the benchmark drives it: a message from a person in a place, and whether
    a reply has reached that place."""

    name: str
    path: str
    request: Callable[[str, str, str], tuple[bytes, dict[str, str]]]  # person, text, place
    retried: dict[str, str]  # what a platform's redelivery adds (headers)
    open_place: Callable[[int], str]  # a place of its own for end-to-end turn n
    replied: Callable[[str], bool]


def _slack(slack: FakeSlack) -> Channel:
    def request(person: str, text: str, place: str) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(slack_event(text, user=person, channel=place)).encode()
        return body, signed(body)

    def open_place(n: int) -> str:
        slack.channels.add(f"D0E2E{n:05d}")  # each person's DM is a channel of its own, as on
        return f"D0E2E{n:05d}"  # Slack (which allows about one message a second per channel)

    return Channel(
        "Slack", "/v1/channels/slack/events", request, RETRY, open_place,
        lambda place: bool(slack.in_channel(place)),
    )  # fmt: skip


def _telegram(telegram: FakeTelegram) -> Channel:
    def request(person: str, text: str, place: str) -> tuple[bytes, dict[str, str]]:
        chat = int(place)
        update = text_update(text, user=int(person) % 10**9 + 1, chat=chat)
        return json.dumps(update).encode(), telegram_headers()

    def open_place(n: int) -> str:
        telegram.chats[900_000 + n] = set()
        return str(900_000 + n)

    return Channel(
        "Telegram", "/v1/channels/telegram/webhook", request, {}, open_place,
        lambda place: any(s.method == "sendmessage" for s in telegram.in_chat(int(place))),
    )  # fmt: skip


def _google_chat(chat: FakeGoogleChat) -> Channel:
    token = chat.project_token()  # valid for an hour: the benchmark takes minutes

    def request(person: str, text: str, place: str) -> tuple[bytes, dict[str, str]]:
        return json.dumps(chat_event(text, person=person, space=place)).encode(), chat_headers(
            token
        )

    def open_place(n: int) -> str:
        chat.spaces.add(f"E2E{n:05d}")
        return f"E2E{n:05d}"

    return Channel(
        "Google Chat", "/v1/channels/google-chat/events", request, {}, open_place,
        lambda place: bool(chat.in_space(place)),
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=200, help="requests per measurement")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # google-auth's region lookup, offline
    slack = FakeSlack(channels={"D0DIRECT01", "C0GENERAL1"}).start()
    telegram = FakeTelegram().start()
    oauth = FakeTokenEndpoint(required_scope=CHAT_BOT_SCOPE).start()
    os.environ["GOOGLE_APPLICATION_CREDENTIALS"] = str(
        oauth.service_account_file(Path(tempfile.mkdtemp(prefix="bench-channels-")))
    )
    chat = FakeGoogleChat(
        accepts=lambda t: oauth.accepts(t) or oauth.accepts_self_signed(t, CHAT_BOT_SCOPE)
    ).start()
    url = bench_database("bench_channels")
    settings = Settings().replace(
        database_url=url,
        jwt_hs256_secret=SECRET,
        rate_limit_per_minute=0,
        slack_signing_secret=SIGNING_SECRET,
        slack_bot_token=BOT_TOKEN,
        slack_api_url=slack.api_url,
        telegram_bot_token=TELEGRAM_TOKEN,
        telegram_webhook_secret=TELEGRAM_SECRET,
        telegram_api_url=telegram.url,
        google_chat_audience=PROJECT_NUMBER,
        google_chat_keys_url=chat.chat_keys_url,
        google_chat_api_endpoint=chat.url,
    )
    store = MessageStore(url, min_size=2, max_size=8).open()
    publisher = Publisher()
    api = create_api(lambda: store, lambda: publisher, settings.serving_api())
    server = make_server("127.0.0.1", 0, api.flask_app(), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    print(f"channels benchmark: ingest at {base}; Slack, Telegram and Google Chat stand-ins")
    channels = [_slack(slack), _telegram(telegram), _google_chat(chat)]
    places = {"Slack": "D0DIRECT01", "Telegram": str(PRIVATE_CHAT), "Google Chat": CHAT_DM}
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

        def post(channel: Channel, request: tuple[bytes, dict[str, str]], **extra: str) -> None:
            body, headers = request
            answer = http.post(channel.path, content=body, headers={**headers, **extra})
            assert answer.status_code == 200, answer.text

        samples: dict[str, list[float]] = {"api": []}
        for n in range(20):  # warm every path: pools, imports, verifiers, keys
            api_append(n)
            for channel in channels:
                post(channel, channel.request("1000000001", f"warm {n}", places[channel.name]))
        person = "1000000002"
        for channel in channels:
            post(channel, channel.request(person, "hello", places[channel.name]))
            for kind in ("ack", "new", "retry"):
                samples[f"{channel.name}/{kind}"] = []
        repeats: dict[str, list[tuple[bytes, dict[str, str]]]] = {c.name: [] for c in channels}
        for n in range(args.rounds):
            samples["api"].append(_ms(api_append, n))
            for channel in channels:
                place = places[channel.name]
                request = channel.request(person, f"note {n}", place)
                repeats[channel.name].append(request)
                samples[f"{channel.name}/ack"].append(_ms(post, channel, request))
                first = channel.request(str(2000000000 + n), "hello", place)
                samples[f"{channel.name}/new"].append(_ms(post, channel, first))
        for channel in channels:
            for request in repeats[channel.name]:
                samples[f"{channel.name}/retry"].append(
                    _ms(post, channel, request, **channel.retried)
                )
        figures = {name: Figures(values) for name, values in samples.items() if values}

        publisher.engine = build_engine(settings, store, OfflineModel())
        for index, channel in enumerate(channels):
            turns: list[float] = []
            for n in range(min(30, args.rounds)):
                place = channel.open_place(index * 1000 + n)
                started = time.perf_counter()
                post(channel, channel.request(str(3000000000 + n), "what is 2+2?", place))
                while not channel.replied(place):
                    time.sleep(0.001)
                turns.append((time.perf_counter() - started) * 1000)
            figures[f"{channel.name}/turn"] = Figures(turns)
    print(row("API: POST .../messages (baseline)", figures["api"]))
    for channel in channels:
        name = channel.name
        print(row(f"{name}: request -> 200, existing conversation", figures[f"{name}/ack"]))
        print(row(f"{name}: request -> 200, new conversation", figures[f"{name}/new"]))
        print(row(f"{name}: a repeated delivery -> 200", figures[f"{name}/retry"]))
        print(row(f"{name}: request -> reply posted (offline model)", figures[f"{name}/turn"]))
    for channel in channels:
        ack = figures[f"{channel.name}/ack"]
        print(ratio_line(f"{channel.name} ack against the API append", ack, figures["api"], 1.5))
        verdict = "meets" if ack.p50 <= ACK_TARGET_MS else "MISSES"
        print(
            f"  {channel.name} ack p50 {ack.p50:.1f} ms (target <= {ACK_TARGET_MS:g} ms: {verdict})"
        )
    if out := os.environ.get("BENCH_OUT"):
        Path(out).write_text(
            json.dumps({k: {"p50": v.p50, "p99": v.p99} for k, v in figures.items()}, indent=2)
        )
    server.shutdown()
    publisher.pool.shutdown(wait=True)
    for service in (slack, telegram, chat, oauth):
        service.stop()
    store.close()


def _ms(action: Callable[..., None], *args: Any, **kwargs: Any) -> float:
    started = time.perf_counter()
    action(*args, **kwargs)
    return (time.perf_counter() - started) * 1000


if __name__ == "__main__":
    main()
