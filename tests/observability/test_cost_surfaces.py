"""Where cost shows: the thread API (and its OpenAPI schema) and the command line's summary."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import jsonschema
import pytest
from tests.api.conftest import api_settings, bearer
from tests.projections.thread_events import ThreadEvents
from tests.publishers import RecordingPublisher

from messagedb_agent.api import create_api
from messagedb_agent.engine.runner import run_until_idle
from messagedb_agent.events import LLMResponseReceived, TokenUsage
from messagedb_agent.events.ids import message_id
from messagedb_agent.projections.cost import ModelPrice, PriceTable
from messagedb_agent.render import format_usd, summary_line
from messagedb_agent.runtime import build_engine
from messagedb_agent.settings import Settings
from messagedb_agent.store.client import MessageStore


def test_the_thread_api_reports_cost_per_model_in_its_documented_shape(
    store: MessageStore, settings: Settings
) -> None:
    priced_offline = settings.replace(model_prices='{"offline": {"input": 1000, "output": 2000}}')
    user = f"obs-{uuid.uuid4().hex[:8]}"
    publisher = RecordingPublisher()
    api = create_api(lambda: store, lambda: publisher, api_settings(priced_offline))
    client = api.flask_app().test_client()
    created = client.post("/v1/threads", json={"message": "what time is it"}, headers=bearer(user))
    engine = build_engine(settings.replace(model_name="offline"), store)
    run_until_idle(engine, publisher.published[0], chain=20)

    body: dict[str, Any] = client.get(
        f"/v1/threads/{created.get_json()['thread_id']}", headers=bearer(user)
    ).get_json()

    usage = body["token_usage"]
    expected = (usage["input_tokens"] * 1000 + usage["output_tokens"] * 2000) / 1_000_000
    assert usage["total_tokens"] > 0
    assert body["cost"]["usd"] == pytest.approx(expected)
    [model] = body["cost"]["by_model"]
    assert model["model"] == "offline-stand-in"
    assert model["priced"] is True
    assert (model["input_tokens"], model["output_tokens"]) == (
        usage["input_tokens"],
        usage["output_tokens"],
    )
    assert model["calls"] == body["counts"]["llm_calls"]
    assert body["cost"]["unpriced_models"] == []
    document = client.get("/openapi.json").get_json()
    schema = {**document, "$ref": "#/components/schemas/ThreadDetail"}
    jsonschema.Draft202012Validator(schema).validate(body)
    assert "cost" in document["components"]["schemas"]["ThreadDetail"]["required"]


def test_the_summary_line_shows_what_the_thread_cost() -> None:
    thread = ThreadEvents()
    thread.started()
    thread.user("plan my week")
    step = thread.claim()
    thread.add(
        LLMResponseReceived(
            step_id=step,
            response_text="done",
            model_name="gemini-2.5-pro",
            token_usage=TokenUsage(input_tokens=10_000, output_tokens=2_000),
        ),
        message_id(step, "response"),
    )

    line = summary_line(thread.events, PriceTable())

    # (10 000 × 1.25 + 2 000 × 10) / 1e6 = 0.0325
    assert "12000 tokens · $0.0325 · 4 events" in line
    unpriced = PriceTable({"offline": ModelPrice(Decimal(0), Decimal(0))})
    assert "$0 + unpriced" in summary_line(thread.events, unpriced)


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        (Decimal(0), "$0"),
        (Decimal("0.000123"), "$0.000123"),
        (Decimal("0.0000004"), "<$0.000001"),
        (Decimal("0.0325"), "$0.0325"),
        (Decimal("0.5"), "$0.5"),
        (Decimal("12.3456"), "$12.35"),
        (Decimal("1234.5"), "$1,234.50"),
    ],
)
def test_dollars_are_shown_as_people_read_them(amount: Decimal, shown: str) -> None:
    assert format_usd(amount) == shown
