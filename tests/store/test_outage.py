"""A database outage: calls are refused within the wait timeout, then at once while it lasts,
and the same store works again by itself once the database is back."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from tests.tcp_proxy import CuttableProxy

from messagedb_agent.store.client import FAIL_FAST_SECONDS, MessageStore
from messagedb_agent.store.errors import StoreUnavailableError

WAIT = 1.0


@pytest.fixture
def proxy(database_url: str) -> Iterator[CuttableProxy]:
    through = CuttableProxy(database_url)
    yield through
    through.close()


@pytest.fixture
def proxied(proxy: CuttableProxy) -> Iterator[MessageStore]:
    with MessageStore(proxy.url, min_size=1, max_size=2, timeout=10, wait_timeout=WAIT) as store:
        yield store


def timed_failure(call: object) -> tuple[float, str]:
    assert callable(call)
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as caught:
        call()
    return time.monotonic() - started, str(caught.value)


def back_within(store: MessageStore, seconds: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            store.stream_version(f"thread-{uuid.uuid4()}")
            return time.monotonic() - started
        except StoreUnavailableError:
            time.sleep(0.1)
    raise AssertionError(f"the store did not come back within {seconds} s")


def test_an_outage_is_refused_within_the_wait_then_at_once_until_the_database_is_back(
    proxied: MessageStore, proxy: CuttableProxy
) -> None:
    stream = f"thread-{uuid.uuid4()}"
    proxied.write_message(None, stream, "Before", {})
    proxy.cut()
    first, reason = timed_failure(lambda: proxied.write_message(None, stream, "During", {}))
    assert first < WAIT + 0.5
    # known to be down: refused without waiting, with the same one-line reason
    later = [timed_failure(lambda: proxied.stream_version(stream)) for _ in range(5)]
    assert max(elapsed for elapsed, _ in later) < 0.05
    assert {text for _, text in later} == {reason}
    assert proxied.unavailable == reason
    health = proxied.health()
    assert not health.ok
    assert health.detail == reason
    # a new connection now hangs: the probe after the pause is bounded by the wait too
    time.sleep(FAIL_FAST_SECONDS)
    probe, _ = timed_failure(lambda: proxied.stream_version(stream))
    assert probe < WAIT + 0.5
    proxy.restore()
    back_within(proxied, 15)
    assert proxied.unavailable is None
    assert proxied.stream_version(stream) == 0


def test_a_busy_pool_is_refused_but_not_taken_for_an_outage(proxied: MessageStore) -> None:
    with proxied.connection(), proxied.connection():  # both connections of the pool held
        elapsed, reason = timed_failure(lambda: proxied.stream_version("thread-x"))
    assert elapsed >= WAIT * 0.9
    assert "busy" in reason
    assert proxied.unavailable is None
    assert proxied.stream_version(f"thread-{uuid.uuid4()}") is None
