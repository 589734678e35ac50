from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from tests.engine.doubles import new_thread
from tests.pubsub.emulator import Emulator

from messagedb_agent.relay import position as position_store
from messagedb_agent.stack.processes import free_port
from messagedb_agent.store import stream_name as names
from messagedb_agent.store.client import MessageStore


def test_a_call_publishes_what_needs_a_step_and_answers_the_counts(
    load_function: Callable[[str], FlaskClient],
    store: MessageStore,
    pubsub_emulator: Emulator,
    topic: str,
) -> None:
    client = load_function("relay")
    client.post("/")  # catch up with what other tests wrote
    pubsub_emulator.pull(topic, expected=10_000, timeout=2)
    thread = new_thread(store, "hello")

    response = client.post("/")

    assert response.status_code == 200
    answer = response.get_json()
    assert answer["published"] >= 1
    shard = position_store.position_stream(names.category(thread.stream_name))
    assert answer["position"] == position_store.get(store, shard)[0].position  # the newest
    assert answer["lag"]["messages"] == 0
    published = [json.loads(m.data) for m in pubsub_emulator.pull(topic, expected=1)]
    assert {"stream_name": thread.stream_name, "position": 1} in published


def test_an_unreachable_database_answers_503(
    load_function: Callable[[str], FlaskClient], function_env: pytest.MonkeyPatch
) -> None:
    function_env.setenv("DATABASE_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    function_env.setenv("DB_CONNECT_TIMEOUT", "1")
    client = load_function("relay")

    response = client.get("/")

    assert response.status_code == 503
    assert response.get_json()["error"] == "unavailable"
