"""One local serverless stack for this directory: the real Pub/Sub emulator, three functions.

Everything the tests do goes through the ingest API over HTTP, as a chat front-end would.
Besides the stack's own push subscription, a pull subscription (the tap) on the topic the
stack created lets a test see which notifications really travelled through the emulator.
Leases are short so that a killed step function's claims expire within the test's patience;
the relay runs every second to take them over.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import grpc  # type: ignore[import-untyped]
import httpx
import pytest
from google.cloud import pubsub_v1  # type: ignore[import-untyped]
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from tests.channels.fake_google_chat import CHAT_BOT_SCOPE, FakeGoogleChat
from tests.channels.fake_google_chat import PROJECT_NUMBER as CHAT_PROJECT_NUMBER
from tests.channels.fake_slack import BOT_TOKEN as SLACK_BOT_TOKEN
from tests.channels.fake_slack import SIGNING_SECRET as SLACK_SIGNING_SECRET
from tests.channels.fake_slack import FakeSlack
from tests.channels.fake_telegram import SECRET as TELEGRAM_SECRET
from tests.channels.fake_telegram import TOKEN as TELEGRAM_TOKEN
from tests.channels.fake_telegram import FakeTelegram
from tests.llm.fake_google_auth import FakeTokenEndpoint

from messagedb_agent.notification import Notification
from messagedb_agent.postgres import embedded
from messagedb_agent.postgres.connect import ensure_installed
from messagedb_agent.pubsub.publisher import PubSubPublisher
from messagedb_agent.settings import Settings
from messagedb_agent.stack import LocalStack, StackOptions
from messagedb_agent.stack.emulator import admin_clients
from messagedb_agent.stack.processes import FUNCTION_CLIENT_LIMITS, Service

RATE_LIMIT_BURST = 10
CALLBACK_SECRET = "e2e-callback-secret-0123456789"
EFFECTS_FILE = Path(tempfile.gettempdir()) / f"e2e-effects-{os.getpid()}.log"
FUNCTION_ENV = {
    "MODEL_NAME": "offline",
    "GOOGLE_CLOUD_PROJECT": "",
    "LLM_LEASE_SECONDS": "2",
    "TOOL_LEASE_SECONDS": "2",
    "RATE_LIMIT_PER_MINUTE": "60",
    "RATE_LIMIT_BURST": str(RATE_LIMIT_BURST),
    "CALLBACK_SIGNING_SECRET": CALLBACK_SECRET,
    "CALLBACK_ALLOW_PRIVATE": "true",  # the test's receiver listens on 127.0.0.1, over http
    # a deployer's tool module, found the way the README says: the checkout on the path
    "TOOL_MODULES": "tests.tools.priority_tools,tests.e2e.slow_tools",
    "E2E_EFFECTS_FILE": str(EFFECTS_FILE),
    # the offline model streams, as on the local stack, but briskly: turns stay short
    "OFFLINE_WORD_DELAY_MS": "5",
    "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
}
TAP = "e2e-tap"


class Tap:
    """A pull subscription: on the stack's topic (`on_topic`), every notification published
    after its creation; or an existing one, such as the dead-letter subscription."""

    def __init__(self, emulator_host: str, path: str) -> None:
        self._publisher, self._subscriber = admin_clients(emulator_host)
        self.path = path
        self.seen: dict[str, list[int]] = {}

    @classmethod
    def on_topic(cls, emulator_host: str, project: str, topic: str) -> Tap:
        tap = cls(emulator_host, f"projects/{project}/subscriptions/{TAP}")
        tap._subscriber.create_subscription(request={"name": tap.path, "topic": topic})
        return tap

    def drain(self) -> dict[str, list[int]]:
        """Pull and acknowledge what is waiting; returns everything seen so far, by stream."""
        while True:
            with warnings.catch_warnings():
                # Deprecated for production pulls; the emulator honours it, and a test that
                # asks "what has arrived?" must not wait out a long poll on an empty queue.
                warnings.simplefilter("ignore", DeprecationWarning)
                response = self._subscriber.pull(
                    subscription=self.path, max_messages=1000, return_immediately=True, timeout=10
                )
            received = response.received_messages
            if not received:
                return self.seen
            self._subscriber.acknowledge(
                subscription=self.path, ack_ids=[m.ack_id for m in received]
            )
            for item in received:
                payload = json.loads(item.message.data)
                self.seen.setdefault(payload["stream_name"], []).append(payload["position"])

    def counts(self, stream: str) -> Counter[int]:
        """How many notifications of each position of `stream` the topic carried so far."""
        return Counter(self.drain().get(stream, ()))

    def missing(
        self,
        stream: str,
        positions: Iterable[int],
        *,
        at_least: Counter[int] | None = None,
        timeout: float = 10.0,
    ) -> set[int]:
        """The positions announced fewer times than wanted (once, or `at_least`), at the end."""
        wanted = at_least if at_least is not None else Counter(set(positions))
        deadline = time.monotonic() + timeout
        while True:
            seen = self.counts(stream)
            left = {p for p, n in wanted.items() if seen[p] < n}
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.1)

    def close(self) -> None:
        self._subscriber.close()
        self._publisher.transport.close()


@dataclass
class Live:
    """The running stack as a front-end (and a meddling operator) sees it."""

    stack: LocalStack
    tap: Tap
    publisher: PubSubPublisher  # the project's publisher, bound to the stack's emulator topic
    slack: FakeSlack  # the Slack the stack's Slack channel talks to
    telegram: FakeTelegram  # the Bot API the Telegram channel talks to
    google_chat: FakeGoogleChat  # the Chat API the Google Chat channel talks to

    @property
    def database_url(self) -> str:
        assert self.stack.database_url is not None
        return self.stack.database_url

    @property
    def ingest(self) -> str:
        return self.stack.urls["ingest"]

    def token(self, user: str) -> str:
        token = self.stack.dev_token(user)
        assert token is not None
        return token

    def client(self, user: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.ingest,
            headers={"Authorization": f"Bearer {self.token(user)}"},
            timeout=60,
            transport=KeepAliveRetry(),
        )

    def publish_again(self, notifications: Sequence[Notification]) -> None:
        """Publish notifications to the stack's topic as if Pub/Sub delivered them once more."""
        self.publisher.publish(notifications)

    def service(self, name: str) -> Service:
        return next(s for s in self.stack.services if s.name == name)


class KeepAliveRetry(httpx.HTTPTransport):
    """Drops idle connections before the functions' server does (it closes one idle for 2 s),
    and sends a request again, once, when the server closed the reused connection before
    reading it anyway: "Server disconnected without sending a response", or, for a GET, a
    reset while waiting for the answer. The server never saw the request, so sending it
    again sends it once."""

    def __init__(self) -> None:
        super().__init__(limits=FUNCTION_CLIENT_LIMITS)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return super().handle_request(request)
        except httpx.RemoteProtocolError:
            return super().handle_request(request)
        except httpx.ReadError:
            if request.method != "GET":
                raise
            return super().handle_request(request)


def _publisher_client(emulator_host: str) -> Any:
    """The official client, as the functions make it, bound to the emulator."""
    return pubsub_v1.PublisherClient(
        transport=PublisherGrpcTransport(channel=grpc.insecure_channel(emulator_host)),
    )


@pytest.fixture(scope="session")
def e2e_database_url(server_url: str, settings: Settings) -> Iterator[str]:
    """A database of the stack's own, on the session's server.

    The stack's relay sweeps the whole `thread` category every second and records its
    position in the one position stream: on the shared test database it would step other
    tests' threads and move the position the relay tests assert on.
    """
    name = f"e2e_{uuid.uuid4().hex[:12]}"
    embedded.create_database(server_url, name)
    url = urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    ensure_installed(url, settings)
    yield url
    embedded.drop_database(server_url, name)


SHUTDOWN = pytest.StashKey[Callable[[], None]]()
HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def live(
    request: pytest.FixtureRequest, e2e_database_url: str, settings: Settings
) -> Iterator[Live]:
    """The stack, started once; stopped after this directory's last test (see the hook below).
    Its Slack channel is on, talking to a local Slack."""
    shutdown: list[Callable[[], None]] = []
    request.session.stash[SHUTDOWN] = lambda: _run_all(shutdown)
    try:
        yield start_live(settings, e2e_database_url, shutdown)
    finally:
        _run_all(shutdown)


def start_live(settings: Settings, database_url: str, shutdown: list[Callable[[], None]]) -> Live:
    """A stack on `database_url` with the Pub/Sub emulator and a local Slack, Telegram and
    Google Chat (the step function authorised to the last as a service account, through a
    local token endpoint); what stops it goes into `shutdown`, in the order to run it."""
    slack = FakeSlack().start()
    shutdown.append(slack.stop)
    telegram = FakeTelegram().start()
    shutdown.append(telegram.stop)
    oauth = FakeTokenEndpoint(required_scope=CHAT_BOT_SCOPE).start()
    shutdown.append(oauth.stop)
    google_chat = FakeGoogleChat(
        accepts=lambda t: oauth.accepts(t) or oauth.accepts_self_signed(t, CHAT_BOT_SCOPE)
    ).start()
    shutdown.append(google_chat.stop)
    account = oauth.service_account_file(Path(tempfile.mkdtemp(prefix="e2e-chat-")))
    env = {
        **FUNCTION_ENV,
        "SLACK_SIGNING_SECRET": SLACK_SIGNING_SECRET,
        "SLACK_BOT_TOKEN": SLACK_BOT_TOKEN,
        "SLACK_API_URL": slack.api_url,
        "TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN,
        "TELEGRAM_WEBHOOK_SECRET": TELEGRAM_SECRET,
        "TELEGRAM_API_URL": telegram.url,
        "GOOGLE_CHAT_AUDIENCE": CHAT_PROJECT_NUMBER,
        "GOOGLE_CHAT_KEYS_URL": google_chat.chat_keys_url,
        "GOOGLE_CHAT_API_ENDPOINT": google_chat.url,
        "GOOGLE_APPLICATION_CREDENTIALS": str(account),
    }
    options = StackOptions.on_free_ports(
        transport="emulator",
        relay_interval=1.0,
        database_url=database_url,
        env=env,
        startup_timeout=60.0,
    )
    stack = LocalStack(settings, options, out=io.StringIO()).start()
    shutdown.insert(0, stack.stop)
    assert stack.emulator_host is not None
    assert stack.topology is not None
    tap = Tap.on_topic(stack.emulator_host, stack.project, stack.topology.topic)
    shutdown.insert(0, tap.close)
    client = _publisher_client(stack.emulator_host)
    shutdown.insert(0, client.stop)
    publisher = PubSubPublisher(stack.project, stack.pubsub.pubsub_topic, client=client)
    return Live(stack, tap, publisher, slack, telegram, google_chat)


def _run_all(steps: list[Callable[[], None]]) -> None:
    """Run each step once, in order, whatever happens to the others (idempotent)."""
    while steps:
        with contextlib.suppress(Exception):
            steps.pop(0)()


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the stack after this directory's last test rather than at the end of the session,
    so its processes (and its relay, every second) do not run through the rest of the suite.
    """
    shutdown = item.session.stash.get(SHUTDOWN, None)
    if shutdown is None:
        return
    ours = [i for i in item.session.items if i.path.is_relative_to(HERE)]
    if ours and item is ours[-1]:
        shutdown()
