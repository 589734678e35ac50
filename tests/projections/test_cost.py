"""Cost: token usage priced per model, per thread and per user, from the events alone."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from tests.projections.thread_events import ThreadEvents

from messagedb_agent.events import ContextCompacted, LLMResponseReceived, TokenUsage
from messagedb_agent.events.ids import compaction_step_id, message_id
from messagedb_agent.llm.catalogue import CATALOGUE
from messagedb_agent.projections.cost import (
    Cost,
    CostFold,
    ModelPrice,
    PriceTable,
    price_table,
    project_cost,
    project_user_cost,
)
from messagedb_agent.settings import Settings

TODAY = date(2026, 11, 30)


def respond(
    thread: ThreadEvents,
    model: str,
    tokens_in: int,
    tokens_out: int,
    *,
    cached: int = 0,
    thinking: int = 0,
) -> None:
    """A claimed model step answered by `model` with this usage."""
    step = thread.claim()
    thread.add(
        LLMResponseReceived(
            step_id=step,
            response_text="ok",
            model_name=model,
            token_usage=TokenUsage(
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                cached_input_tokens=cached,
                thinking_tokens=thinking,
            ),
        ),
        message_id(step, "response"),
    )


def _usd(thread: ThreadEvents, prices: PriceTable | None = None) -> Decimal:
    return project_cost(thread.events, prices).usd


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("gemini-2.5-flash", "gemini-2.5-flash"),
        ("gemini-2.5-flash-001", "gemini-2.5-flash"),
        ("GEMINI-2.5-PRO", "gemini-2.5-pro"),
        ("gemini-2.5-flash-lite", "gemini-2.5-flash-lite"),
        ("gemini-2.5-flash-lite-preview-06-17", "gemini-2.5-flash-lite"),
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("publishers/google/models/gemini-3.8-flash", "gemini-3.8-flash"),
        ("offline-stand-in", "offline"),
    ],
)
def test_a_versioned_model_name_takes_its_familys_catalogue_price(model: str, family: str) -> None:
    assert PriceTable().price_of(model, TODAY) == CATALOGUE[family].price_on(TODAY)


@pytest.mark.parametrize(
    "model", ["gpt-4o", "gemini-2.5-flashy", "claude-sonnet-4", "gemini-2.5-flash-image", ""]
)
def test_a_model_without_a_price_has_none(model: str) -> None:
    assert PriceTable().price_of(model, TODAY) is None


def test_cached_input_is_billed_at_the_cache_rate_and_thinking_as_output() -> None:
    thread = ThreadEvents()
    thread.started()
    respond(thread, "gemini-2.5-flash-001", 10_000, 1_000, cached=4_000, thinking=600)

    cost = project_cost(thread.events)

    # 6 000 fresh × 0.30 + 4 000 cached × 0.03 + 1 000 output (600 of them thinking) × 2.50
    assert cost.usd == Decimal("0.00442")
    [model] = cost.by_model
    assert (model.cached_input_tokens, model.thinking_tokens) == (4_000, 600)
    assert (cost.cached_input_tokens, cost.thinking_tokens) == (4_000, 600)


def test_cached_input_without_a_cache_price_is_billed_as_input() -> None:
    thread = ThreadEvents()
    thread.started()
    respond(thread, "m", 1_000_000, 0, cached=1_000_000)

    assert _usd(thread, PriceTable({"m": ModelPrice(Decimal(2), Decimal(8))})) == Decimal(2)


def test_a_call_is_priced_at_the_rate_of_the_day_it_was_made() -> None:
    # gemini-3.8-flash is half price until 2026-12-31, full price from 2027-01-01.
    december = ThreadEvents(start=datetime(2026, 12, 31, 12, 0, tzinfo=UTC))
    december.started()
    respond(december, "gemini-3.8-flash", 1_000_000, 100_000)
    january = ThreadEvents(start=datetime(2027, 1, 1, 0, 0, tzinfo=UTC))
    january.started()
    respond(january, "gemini-3.8-flash", 1_000_000, 100_000)

    assert _usd(december) == Decimal("0.75") + Decimal("0.375")
    assert _usd(january) == Decimal("1.50") + Decimal("0.75")


def test_a_long_prompt_pays_the_long_context_rate_for_the_whole_call() -> None:
    short, long = ThreadEvents(), ThreadEvents()
    short.started()
    long.started()
    respond(short, "gemini-2.5-pro", 200_000, 10_000)
    respond(long, "gemini-2.5-pro", 200_001, 10_000)

    assert _usd(short) == Decimal("0.25") + Decimal("0.1")  # 1.25 and 10 per million
    assert _usd(long) == Decimal("0.5000025") + Decimal("0.15")  # 2.50 and 15 per million


def test_a_thread_costs_its_tokens_at_each_models_price() -> None:
    thread = ThreadEvents()
    thread.started()
    thread.user("plan my week")
    respond(thread, "gemini-2.5-flash", 1000, 200)
    respond(thread, "gemini-2.5-flash-001", 3000, 500)
    respond(thread, "claude-sonnet-4-5@20250929", 2000, 100)

    cost = project_cost(thread.events)

    # flash: (4000 × 0.30 + 700 × 2.50) / 1e6; sonnet: (2000 × 3 + 100 × 15) / 1e6
    flash = Decimal("0.00295")
    sonnet = Decimal("0.0075")
    assert [(m.model, m.calls, m.usd) for m in cost.by_model] == [
        ("claude-sonnet-4-5@20250929", 1, sonnet),
        ("gemini-2.5-flash", 1, Decimal("0.00080")),
        ("gemini-2.5-flash-001", 1, Decimal("0.00215")),
    ]
    assert cost.usd == flash + sonnet
    assert (cost.input_tokens, cost.output_tokens) == (6000, 800)
    assert cost.unpriced_models == ()


def test_an_unpriced_model_is_counted_and_named_never_guessed() -> None:
    thread = ThreadEvents()
    thread.started()
    respond(thread, "gpt-4o", 5000, 5000)
    respond(thread, "offline-stand-in", 50, 20)

    cost = project_cost(thread.events)

    assert cost.usd == 0
    assert cost.unpriced_models == ("gpt-4o",)
    assert cost.input_tokens == 5050


def test_failed_calls_cost_nothing_and_a_response_without_a_model_takes_its_claims() -> None:
    thread = ThreadEvents()
    thread.started()
    thread.user("hi")
    step = thread.claim()
    thread.fail_llm(step, retryable=True)
    thread.add(
        LLMResponseReceived(
            step_id=step,
            model_name="",
            token_usage=TokenUsage(input_tokens=100, output_tokens=100),
        ),
        message_id(step, "response"),
    )

    cost = project_cost(thread.events, PriceTable({"offline": ModelPrice(Decimal(1), Decimal(2))}))

    # the claim asked for "offline" (ThreadEvents' claims do): 100 × 1 + 100 × 2 per million
    assert [(m.model, m.calls) for m in cost.by_model] == [("offline", 1)]
    assert cost.usd == Decimal("0.0003")


def test_a_thread_with_no_model_calls_costs_nothing() -> None:
    thread = ThreadEvents()
    thread.started()
    thread.user("hello?")
    assert project_cost(thread.events).by_model == ()
    assert project_cost(thread.events).usd == 0
    assert project_cost([]).usd == 0


def test_a_users_cost_is_the_sum_of_their_threads() -> None:
    first = ThreadEvents(stream="thread-00000000-0000-4000-8000-000000000001")
    first.started()
    respond(first, "gemini-2.5-pro", 100_000, 0)
    second = ThreadEvents(stream="thread-00000000-0000-4000-8000-000000000002")
    second.started()
    respond(second, "gemini-2.5-pro", 0, 100_000)
    respond(second, "gemini-2.5-flash", 1_000_000, 0)

    spent = project_user_cost([first.events, second.events, []])

    assert {stream: cost.usd for stream, cost in spent.threads.items()} == {
        first.stream: Decimal("0.125"),
        second.stream: Decimal("1.30"),
    }
    assert spent.total.usd == Decimal("1.425")
    assert [(m.model, m.calls) for m in spent.total.by_model] == [
        ("gemini-2.5-flash", 1),
        ("gemini-2.5-pro", 2),
    ]


def test_model_prices_from_the_environment_override_and_extend_the_catalogue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "MODEL_PRICES",
        '{"Gemini-3.8-Flash": {"input": 0.5, "output": 3, "cached_input": 0.05},'
        ' "llama-4": {"input": 1, "output": 1}}',
    )
    table = price_table(Settings(_env_file=None).prices)  # type: ignore[call-arg]

    override = ModelPrice(Decimal("0.5"), Decimal(3), Decimal("0.05"))
    for day in (TODAY, date(2027, 6, 1)):  # replaces the catalogue's price on every date
        assert table.price_of("gemini-3.8-flash-001", day) == override
    assert table.price_of("llama-4", TODAY) == ModelPrice(Decimal(1), Decimal(1))
    assert table.price_of("gemini-2.5-pro", TODAY) == CATALOGUE["gemini-2.5-pro"].price_on()


@pytest.mark.parametrize(
    "value",
    [
        '{"m": {"input": -1, "output": 1}}',
        '{"m": {"input": 1}}',
        '{"m": {"input": 1, "output": 1, "cached_input": -0.1}}',
        '{"m": [1, 2]}',
        "not json",
    ],
)
def test_malformed_model_prices_are_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("MODEL_PRICES", value)
    with pytest.raises((ValidationError, ValueError)):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_a_compaction_is_a_paid_call_and_counts_in_the_cost() -> None:
    thread = ThreadEvents()
    thread.started()
    thread.user("hi")
    respond(thread, "gemini-3.8-flash", 1_000_000, 0)
    alone = _usd(thread)
    step = compaction_step_id(thread.stream, thread.head)
    thread.add(
        ContextCompacted(
            step_id=step,
            summary="they said hi",
            first_kept_position=thread.head,
            summarised_messages=2,
            tokens_before=5_000,
            model_name="gemini-3.8-flash",
            token_usage=TokenUsage(input_tokens=1_000_000, output_tokens=0),
        ),
        message_id(step, "compacted"),
    )
    cost = project_cost(thread.events)
    assert cost.usd == 2 * alone > 0
    assert cost.by_model[0].calls == 2


# "" answers as the model its claim asked for ("offline"); gpt-4o has no price here
_model = st.sampled_from(("offline", "gemini-3.8-flash", "gpt-4o", ""))
_tokens = st.integers(min_value=0, max_value=2_000_000)
_calls = st.lists(
    st.one_of(
        st.tuples(st.just("respond"), _model, _tokens, _tokens, _tokens, st.booleans()),
        st.tuples(st.just("compact"), _model, _tokens, _tokens),
        st.tuples(st.just("fail")),
        st.tuples(st.just("user")),
    ),
    max_size=25,
)


def _history(calls: list[tuple[Any, ...]]) -> ThreadEvents:
    """Responses to claimed steps (or, `claimed` False, to steps nobody claimed),
    compactions, failed calls and user messages."""
    thread = ThreadEvents()
    thread.started()
    for kind, *args in calls:
        if kind == "user":
            thread.user("more")
        elif kind == "fail":
            thread.fail_llm(thread.claim(), retryable=True)
        elif kind == "respond":
            model, tokens_in, tokens_out, cached, claimed = args
            step = thread.claim() if claimed else f"unclaimed-{thread.head}"
            usage = TokenUsage(
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                cached_input_tokens=min(cached, tokens_in),
            )
            thread.add(
                LLMResponseReceived(step_id=step, model_name=model, token_usage=usage),
                message_id(step, "response"),
            )
        else:
            model, tokens_in, tokens_out = args
            step = compaction_step_id(thread.stream, thread.head)
            thread.add(
                ContextCompacted(
                    step_id=step,
                    summary="so far",
                    first_kept_position=thread.head,
                    summarised_messages=1,
                    tokens_before=tokens_in,
                    model_name=model,
                    token_usage=TokenUsage(input_tokens=tokens_in, output_tokens=tokens_out),
                ),
                message_id(step, "compacted"),
            )
    return thread


@settings(max_examples=150, deadline=None)
@given(_calls)
def test_folding_one_event_at_a_time_equals_projecting_every_prefix(
    calls: list[tuple[Any, ...]],
) -> None:
    events = _history(calls).events
    prices = PriceTable(
        {
            "offline": ModelPrice(Decimal(1), Decimal(4), Decimal("0.5")),
            "gemini-3.8-flash": ModelPrice(Decimal("0.3"), Decimal("2.5")),
        }
    )
    fold = CostFold(prices)
    seen: list[Cost] = []
    for recorded in events:
        fold.apply(recorded)
        seen.append(fold.cost)
    # read after the whole history was applied: a value handed out earlier did not move
    assert seen == [project_cost(events[: k + 1], prices) for k in range(len(events))]
