"""Per-user write limits, kept in PostgreSQL so every instance spends the same bucket."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from flask.testing import FlaskClient
from tests.api.conftest import MakeApi, bearer

from messagedb_agent.api.rate_limit import RateLimiter
from messagedb_agent.store.client import MessageStore


def post(client: FlaskClient, headers: dict[str, str]) -> int:
    return client.post("/v1/threads", headers=headers).status_code


def test_writes_beyond_the_limit_get_429_with_retry_after(
    make_api: MakeApi, auth: dict[str, str]
) -> None:
    client = make_api(rate_limit_per_minute=3).flask_app().test_client()

    statuses = [post(client, auth) for _ in range(3)]
    refused = client.post("/v1/threads", headers=auth)

    assert statuses == [201, 201, 201]
    assert refused.status_code == 429
    error = refused.get_json()["error"]
    assert error["code"] == "rate_limited"
    assert "wait" in error["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 20


def test_reads_are_not_limited(make_api: MakeApi, auth: dict[str, str]) -> None:
    client = make_api(rate_limit_per_minute=1).flask_app().test_client()
    post(client, auth)

    assert post(client, auth) == 429
    assert client.get("/v1/threads", headers=auth).status_code == 200


def test_one_users_limit_does_not_touch_another(make_api: MakeApi, auth: dict[str, str]) -> None:
    client = make_api(rate_limit_per_minute=2).flask_app().test_client()
    while post(client, auth) != 429:
        pass

    assert post(client, bearer(f"bystander-{uuid.uuid4().hex[:8]}")) == 201


def test_separate_api_instances_share_one_bucket(make_api: MakeApi, auth: dict[str, str]) -> None:
    first = make_api(rate_limit_per_minute=4).flask_app().test_client()
    second = make_api(rate_limit_per_minute=4).flask_app().test_client()

    statuses = [post(first, auth), post(second, auth), post(first, auth), post(second, auth)]

    assert statuses == [201] * 4
    assert post(first, auth) == 429
    assert post(second, auth) == 429


def test_the_burst_can_exceed_the_steady_rate(make_api: MakeApi, auth: dict[str, str]) -> None:
    client = make_api(rate_limit_per_minute=1, rate_limit_burst=3).flask_app().test_client()

    assert [post(client, auth) for _ in range(4)] == [201, 201, 201, 429]


def test_the_bucket_refills_with_time(store: MessageStore) -> None:
    limiter = RateLimiter(store, per_minute=600, burst=1)  # one token every 0.1 s
    user = f"refill-{uuid.uuid4().hex[:8]}"

    assert limiter.take(user).allowed
    refused = limiter.take(user)
    time.sleep(0.25)

    assert not refused.allowed
    assert refused.retry_after == 1
    assert limiter.take(user).allowed


def test_a_zero_limit_turns_limiting_off(make_api: MakeApi, auth: dict[str, str]) -> None:
    client = make_api(rate_limit_per_minute=0).flask_app().test_client()

    assert {post(client, auth) for _ in range(5)} == {201}


def test_concurrent_requests_never_spend_the_same_token(store: MessageStore) -> None:
    limiter = RateLimiter(store, per_minute=5, burst=5)
    user = f"racer-{uuid.uuid4().hex[:8]}"
    limiter.take(f"warm-{user}")  # create the table before the race

    with ThreadPoolExecutor(max_workers=6) as pool:
        decisions = list(pool.map(lambda _: limiter.take(user), range(12)))

    assert sum(d.allowed for d in decisions) == 5
