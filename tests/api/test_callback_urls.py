"""Callback URLs: only public https addresses, checked when the thread starts and again, after
resolving, at every delivery."""

from __future__ import annotations

import uuid

import pytest
from flask.testing import FlaskClient
from tests.api.conftest import MakeApi
from tests.channels.dns import FakeDns, install_fake_dns
from tests.engine.doubles import Clock, EchoTools, ScriptedModel, text
from tests.receiver import Receiver

from messagedb_agent.api.models import CALLBACK_URL_PATTERN, HTTPS_CALLBACK_URL_PATTERN
from messagedb_agent.channels.callback import HttpReplySender
from messagedb_agent.engine.effects import EngineConfig
from messagedb_agent.engine.runner import run_until_idle
from messagedb_agent.engine.step import Engine
from messagedb_agent.events import ReplyDeliveryFailed
from messagedb_agent.notification import Notification
from messagedb_agent.store.client import MessageStore
from messagedb_agent.store.stream_name import thread_stream
from messagedb_agent.threads.reading import read_thread


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    fake = install_fake_dns(monkeypatch)
    fake.set("public.example", "93.184.216.34")
    fake.set("internal.example", "10.1.2.3")
    return fake


def threads_of(client: FlaskClient, auth: dict[str, str]) -> list[str]:
    listed = client.get("/v1/threads", headers=auth).get_json()["threads"]
    return [item["thread_id"] for item in listed]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://169.254.169.254/latest", "169.254.169.254 is not a public internet address"),
        ("https://10.0.0.1/hook", "10.0.0.1 is not a public internet address"),
        ("https://100.64.0.1/hook", "100.64.0.1 is not a public internet address"),
        ("https://0.0.0.0/hook", "0.0.0.0 is not a public internet address"),
        ("https://localhost:8443/hook", "localhost is this machine"),
        ("https://2130706433/", "2130706433 resolves to 127.0.0.1"),
        ("https://internal.example/hook", "internal.example resolves to 10.1.2.3"),
        ("http://127.0.0.1:8000/hook", "must be an https URL"),
        ("http://localhost/hook", "must be an https URL"),
        ("http://public.example/hook", "must be an https URL"),
        ("https://public.example:70000/hook", "must be a valid URL"),
        ("https://public..example/hook", "must name a valid host"),
        ("https://public.example/\x00", "must not contain spaces or control characters"),
        ("https://public.example/?q=\x01", "must not contain spaces or control characters"),
    ],
)
def test_a_callback_url_that_leads_inside_is_refused_when_the_thread_starts(
    client: FlaskClient, auth: dict[str, str], dns: FakeDns, url: str, reason: str
) -> None:
    response = client.post("/v1/threads", json={"callback_url": url}, headers=auth)

    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_request"
    assert error["message"].startswith("The callback URL can't be used: ")
    [detail] = error["details"]
    assert detail["field"] == "callback_url"
    assert detail["message"].startswith(reason)
    assert threads_of(client, auth) == []


@pytest.mark.parametrize(
    "url",
    ["https://[::1]/hook", "https://[fe80::1]/hook", "ftp://x.test/", "https://u:p@x.test/"],
)
def test_a_callback_url_outside_the_documented_form_is_refused(
    client: FlaskClient, auth: dict[str, str], url: str
) -> None:
    response = client.post("/v1/threads", json={"callback_url": url}, headers=auth)

    assert response.status_code == 400
    assert response.get_json()["error"]["details"][0]["field"] == "callback_url"


@pytest.mark.parametrize(
    "url",
    ["https://public.example/hook", "https://public.example:8443/h?x=1", "https://x.test/cb"],
)
def test_a_public_https_callback_url_is_accepted(
    client: FlaskClient, auth: dict[str, str], dns: FakeDns, url: str
) -> None:
    response = client.post("/v1/threads", json={"callback_url": url}, headers=auth)

    assert response.status_code == 201, response.get_json()


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8080/cb",
        "http://127.0.0.1/reply",
        "https://10.0.0.1/hook",
        "https://internal.example/hook",
    ],
)
def test_local_and_private_callback_urls_are_accepted_only_when_allowed(
    make_api: MakeApi, auth: dict[str, str], dns: FakeDns, url: str
) -> None:
    local = make_api(callback_allow_private=True).flask_app().test_client()
    cloud = make_api().flask_app().test_client()

    allowed = local.post("/v1/threads", json={"callback_url": url}, headers=auth)
    refused = cloud.post("/v1/threads", json={"callback_url": url}, headers=auth)

    assert allowed.status_code == 201
    assert refused.status_code == 400


def test_the_document_allows_plain_http_callbacks_only_where_they_are_accepted(
    make_api: MakeApi,
) -> None:
    def pattern(api: MakeApi, **overrides: bool) -> str:
        schema = api(**overrides).openapi()["components"]["schemas"]["StartThreadRequest"]
        [string] = [o for o in schema["properties"]["callback_url"]["anyOf"] if "pattern" in o]
        found: str = string["pattern"]
        return found

    assert pattern(make_api) == HTTPS_CALLBACK_URL_PATTERN
    assert pattern(make_api, callback_allow_private=True) == CALLBACK_URL_PATTERN


def test_a_host_public_when_the_thread_started_but_internal_at_delivery_gets_nothing(
    client: FlaskClient,
    auth: dict[str, str],
    user: str,
    dns: FakeDns,
    store: MessageStore,
) -> None:
    """DNS rebinding: the delivery resolves again, refuses, and records a final failure."""
    receiver = Receiver()
    try:
        port = receiver.server.server_address[1]
        name = f"rebind-{uuid.uuid4().hex[:8]}.example"
        dns.set(name, "93.184.216.34")
        created = client.post(
            "/v1/threads",
            json={"message": "hello", "callback_url": f"https://{name}:{port}/hook"},
            headers=auth,
        )
        assert created.status_code == 201
        dns.set(name, "127.0.0.1")  # the name now points at the machine itself
        model = ScriptedModel()
        model.script = [text("the reply")]
        engine = Engine(
            store,
            model,
            EchoTools({}),
            EngineConfig(model="scripted"),
            clock=Clock(),
            worker="test",
            replies=HttpReplySender("secret", timeout=5),
        )
        stream = thread_stream(created.get_json()["thread_id"])

        run_until_idle(engine, Notification(stream_name=stream, position=1), chain=50)

        events = read_thread(store, stream)
        failures = [e.event for e in events if isinstance(e.event, ReplyDeliveryFailed)]
        assert [e.type for e in events].count("ReplyDeliveryRequested") == 1  # never retried
        [failure] = failures
        assert not failure.retryable
        assert failure.retry_at is None
        assert failure.error_message == (
            f"refused to deliver to the callback URL: {name} resolves to 127.0.0.1, "
            "which is not a public address"
        )
        assert receiver.received == []
    finally:
        receiver.server.shutdown()
