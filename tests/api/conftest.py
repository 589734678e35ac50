"""Fixtures for API tests: a real Message DB behind the API, driven through Flask's test client."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from flask.testing import FlaskClient
from tests.publishers import RecordingPublisher

from messagedb_agent.api import IngestApi, create_api, issue_dev_token
from messagedb_agent.notification import (
    Notification,
    NotificationPublisher,
)
from messagedb_agent.settings import Settings
from messagedb_agent.store.client import MessageStore
from messagedb_agent.store.stream_name import thread_stream
from messagedb_agent.threads import commands

SECRET = "api-tests-secret-0123456789abcdef0123456789"

MakeApi = Callable[..., IngestApi]


def api_settings(base: Settings | None = None, **overrides: Any) -> Settings:
    """Settings of a process serving the API, for tests: `base` (else the defaults) with the
    API's variables given explicitly, never the developer's environment or `.env`."""
    values: dict[str, Any] = {
        "jwt_hs256_secret": SECRET,
        "rate_limit_per_minute": 10_000,
        "k_service": None,
        **overrides,
    }
    made = base.replace(**values) if base else Settings.model_validate(values)
    return made.serving_api()


def bearer(user: str, secret: str = SECRET, **claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_dev_token(user, secret, **claims)}"}


@pytest.fixture
def user() -> str:
    """A user no other test uses, so listings and rate limits start empty."""
    return f"user-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def auth(user: str) -> dict[str, str]:
    return bearer(user)


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def make_api(store: MessageStore, settings: Settings) -> Iterator[MakeApi]:
    """APIs over the session's store; each one's LISTEN session (opened by a request that
    waits) is closed after the test, since the store that would end it outlives the test."""
    made: list[IngestApi] = []

    def make(
        publisher: NotificationPublisher | None = None,
        store_factory: Callable[[], MessageStore] | None = None,
        core: Settings | None = None,
        **overrides: Any,
    ) -> IngestApi:
        chosen = publisher or RecordingPublisher()
        api = create_api(
            store_factory or (lambda: store),
            lambda: chosen,
            api_settings(core or settings, **overrides),
        )
        made.append(api)
        return api

    yield make
    for api in made:
        api.close()


@pytest.fixture
def api(make_api: MakeApi, publisher: RecordingPublisher) -> IngestApi:
    return make_api(publisher)


@pytest.fixture
def client(api: IngestApi) -> Iterator[FlaskClient]:
    with api.flask_app().test_client() as test_client:
        yield test_client


def start(client: FlaskClient, auth: dict[str, str], message: str | None = "hello") -> str:
    body = {} if message is None else {"message": message}
    response = client.post("/v1/threads", json=body, headers=auth)
    assert response.status_code == 201, response.get_json()
    thread_id: str = response.get_json()["thread_id"]
    return thread_id


@pytest.fixture
def finds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each thread a request looks up (`find_thread`, which every command resolves with)."""
    looked_up: list[str] = []
    find = commands.find_thread

    def counted(store: MessageStore, thread: str, owner: str) -> commands.Found:
        looked_up.append(thread)
        return find(store, thread, owner)

    monkeypatch.setattr(commands, "find_thread", counted)
    return looked_up


def event_types(store: MessageStore, thread_id: str) -> list[str]:
    return [m.type for m in store.read_stream(thread_stream(thread_id))]


def published_positions(publisher: RecordingPublisher) -> list[tuple[str, int]]:
    return [(n.stream_name, n.position) for n in publisher.published]


class FailingPublisher:
    def __init__(self) -> None:
        self.attempts = 0

    def publish(self, notifications: Sequence[Notification]) -> None:
        self.attempts += 1
        raise RuntimeError("pubsub is down")
