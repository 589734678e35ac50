"""The API during a database outage: a friendly 503 within the wait timeout, at once while the
outage is known, `/healthz` naming what is down, and service again once the database is back."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient
from tests.api.conftest import MakeApi
from tests.tcp_proxy import CuttableProxy

from messagedb_agent.store.client import MessageStore

WAIT = 2.0  # DB_WAIT_TIMEOUT's default


@pytest.fixture
def proxy(database_url: str) -> Iterator[CuttableProxy]:
    through = CuttableProxy(database_url)
    yield through
    through.close()


@pytest.fixture
def outage_client(make_api: MakeApi, proxy: CuttableProxy) -> Iterator[FlaskClient]:
    with MessageStore(proxy.url, min_size=1, max_size=4, timeout=10, wait_timeout=WAIT) as store:
        api = make_api(store_factory=lambda: store)
        with api.flask_app().test_client() as client:
            yield client


def timed(call: object) -> tuple[float, object]:
    assert callable(call)
    started = time.monotonic()
    response = call()
    return time.monotonic() - started, response


def test_an_outage_answers_503_within_two_seconds_then_at_once_and_recovers(
    outage_client: FlaskClient, proxy: CuttableProxy, auth: dict[str, str]
) -> None:
    def start() -> object:
        return outage_client.post("/v1/threads", json={"message": "hello"}, headers=auth)

    _, ok = timed(start)
    assert ok.status_code == 201  # type: ignore[attr-defined]
    proxy.cut()
    # a pooled connection dies with the network, or a new one hangs: either way, within 2 s
    first, refused = timed(start)
    assert refused.status_code == 503  # type: ignore[attr-defined]
    assert refused.get_json()["error"]["code"] == "unavailable"  # type: ignore[attr-defined]
    assert first < WAIT + 0.5
    soon = [timed(start) for _ in range(5)]
    assert all(r.status_code == 503 for _, r in soon)  # type: ignore[attr-defined]
    assert max(elapsed for elapsed, _ in soon) < 0.1  # known to be down: no wait at all
    health_time, health = timed(lambda: outage_client.get("/healthz"))
    assert health.status_code == 503  # type: ignore[attr-defined]
    body = health.get_json()  # type: ignore[attr-defined]
    assert body["status"] == "unavailable"
    assert "database" in body["unavailable"]
    assert (
        "PostgreSQL" in body["unavailable"]["database"]
        or "connection" in (body["unavailable"]["database"])
    )
    assert "secret" not in str(body)
    assert health_time < WAIT + 0.5
    proxy.restore()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        response = start()
        if response.status_code == 201:  # type: ignore[attr-defined]
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the API did not recover within 20 s of the database's return")
    assert outage_client.get("/healthz").status_code == 200
