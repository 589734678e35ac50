"""What a thread's model calls cost: its token usage priced per model, in US dollars.

The projection is pure (events and a price table in, a value out). Prices come from the model
catalogue (`llm/catalogue.py`), each call at the rate in force on the day it was recorded, so a
launch price that ends or a cache price that is cut prices old and new calls rightly; a model
that has since retired keeps its last price, so old threads keep their cost. MODEL_PRICES
replaces a model's price for what you actually pay (a discount, a model the catalogue lacks).

A call costs (input − cached) × input + cached × cached input + output × output, per million
tokens: the cached part of the prompt is billed at the cache rate, and thinking tokens are
already part of the output. Amounts are `Decimal`, so summing thousands of tiny calls does not
drift. A model with no price is counted and named, never guessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from messagedb_agent.events.agent import ContextCompacted, LLMCallRequested, LLMResponseReceived
from messagedb_agent.events.base import Event, Recorded
from messagedb_agent.events.values import TokenUsage
from messagedb_agent.llm.catalogue import MODELS, PriceFrom, family_of, normalise, today
from messagedb_agent.llm.catalogue import Price as ModelPrice
from messagedb_agent.settings.agent import PriceSettings

__all__ = [
    "Cost",
    "CostFold",
    "ModelCost",
    "ModelPrice",
    "PriceTable",
    "UserCost",
    "call_cost",
    "price_table",
    "project_cost",
    "project_user_cost",
]

PER_MILLION = Decimal(1_000_000)
UNKNOWN_MODEL = "unknown"

Schedule = tuple[PriceFrom, ...]


def call_cost(price: ModelPrice, usage: TokenUsage) -> Decimal:
    """One call's cost in USD, at the rates its prompt length pays."""
    rates = price.for_prompt(usage.input_tokens)
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    cached_rate = rates.input if rates.cached_input is None else rates.cached_input
    return (
        (usage.input_tokens - cached) * rates.input
        + cached * cached_rate
        + usage.output_tokens * rates.output
    ) / PER_MILLION


class PriceTable:
    """Prices by model name; a versioned name (`claude-sonnet-5-5@20260928`,
    `claude-sonnet-4-5-20250929`, `gemini-2.5-flash-001`) takes its family's price.

    `PriceTable()` holds the catalogue's prices; `PriceTable({...})` only the ones given,
    each in force on every date.
    """

    def __init__(self, prices: Mapping[str, ModelPrice] | None = None) -> None:
        self._schedules: Mapping[str, Schedule]
        if prices is None:
            self._schedules = _CATALOGUE_SCHEDULES
        else:
            self._schedules = {
                normalise(name): (PriceFrom(None, price),) for name, price in prices.items()
            }

    @classmethod
    def _of(cls, schedules: Mapping[str, Schedule]) -> PriceTable:
        table = cls({})
        table._schedules = dict(schedules)
        return table

    def price_of(self, model: str, at: datetime | date | None = None) -> ModelPrice | None:
        """`model`'s price on the day of `at` (today when None), or None if it has none."""
        family = family_of(model, self._schedules)
        if family is None:
            return None
        day = at.date() if isinstance(at, datetime) else at or today()
        found: ModelPrice | None = None
        for period in self._schedules[family]:
            if period.since is None or period.since <= day:
                found = period.price
        return found


_CATALOGUE_SCHEDULES: Mapping[str, Schedule] = {model.id: model.prices for model in MODELS}


@dataclass(frozen=True, slots=True)
class ModelCost:
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0
    usd: Decimal = Decimal(0)
    priced: bool = True
    cached_input_tokens: int = 0
    thinking_tokens: int = 0

    def __add__(self, other: ModelCost) -> ModelCost:
        return ModelCost(
            self.model,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.calls + other.calls,
            self.usd + other.usd,
            self.priced and other.priced,
            self.cached_input_tokens + other.cached_input_tokens,
            self.thinking_tokens + other.thinking_tokens,
        )


@dataclass(frozen=True, slots=True)
class Cost:
    """Cost of some model calls, per model (sorted by name) and in total."""

    by_model: tuple[ModelCost, ...] = ()

    @property
    def usd(self) -> Decimal:
        return sum((item.usd for item in self.by_model), Decimal(0))

    @property
    def input_tokens(self) -> int:
        return sum(item.input_tokens for item in self.by_model)

    @property
    def output_tokens(self) -> int:
        return sum(item.output_tokens for item in self.by_model)

    @property
    def cached_input_tokens(self) -> int:
        return sum(item.cached_input_tokens for item in self.by_model)

    @property
    def thinking_tokens(self) -> int:
        return sum(item.thinking_tokens for item in self.by_model)

    @property
    def unpriced_models(self) -> tuple[str, ...]:
        return tuple(item.model for item in self.by_model if not item.priced)

    def __add__(self, other: Cost) -> Cost:
        return _combine(self.by_model, other.by_model)


@dataclass(frozen=True, slots=True)
class UserCost:
    """A user's spending: each thread's cost (by stream name) and the sum of them all."""

    threads: Mapping[str, Cost] = field(default_factory=dict)
    total: Cost = field(default_factory=Cost)


class CostFold:
    """The cost, one event at a time, for a view kept current as events arrive (the AG-UI
    stream); `project_cost(events, prices)` is this fold over `events`.

    A response is priced by the model that answered (`model_name`), or, when a provider did
    not say, the model its claim asked for, at the price in force when it was recorded.
    Failed calls report no usage and cost nothing here.
    """

    __slots__ = ("_by_model", "_claimed", "_prices")

    def __init__(self, prices: PriceTable | None = None) -> None:
        self._prices = prices or PriceTable()
        self._claimed: dict[str, str] = {}
        self._by_model: dict[str, ModelCost] = {}

    @property
    def cost(self) -> Cost:
        """As of the events applied so far."""
        return Cost(tuple(self._by_model[name] for name in sorted(self._by_model)))

    def apply(self, recorded: Recorded[Event]) -> ModelCost | None:
        """Counts a model call (a response or a compaction); returns it, priced, or None for
        any other event."""
        event = recorded.event
        if isinstance(event, LLMCallRequested):
            self._claimed[event.step_id] = event.model
            return None
        if not isinstance(event, LLMResponseReceived | ContextCompacted):
            return None
        model = event.model_name or self._claimed.get(event.step_id) or UNKNOWN_MODEL
        usage = event.token_usage
        price = self._prices.price_of(model, recorded.time)
        item = ModelCost(
            model,
            usage.input_tokens,
            usage.output_tokens,
            1,
            call_cost(price, usage) if price else Decimal(0),
            price is not None,
            usage.cached_input_tokens,
            usage.thinking_tokens,
        )
        known = self._by_model.get(model)
        self._by_model[model] = item if known is None else known + item
        return item


def project_cost(events: Sequence[Recorded[Event]], prices: PriceTable | None = None) -> Cost:
    """The priced token usage of every model response (and compaction) in a thread."""
    fold = CostFold(prices)
    for recorded in events:
        fold.apply(recorded)
    return fold.cost


def project_user_cost(
    threads: Iterable[Sequence[Recorded[Event]]], prices: PriceTable | None = None
) -> UserCost:
    """The cost of each of a user's threads and their sum (threads read from the index)."""
    table = prices or PriceTable()
    per_thread: dict[str, Cost] = {}
    total = Cost()
    for events in threads:
        if not events:
            continue
        cost = project_cost(events, table)
        per_thread[events[0].stream_name] = cost
        total = total + cost
    return UserCost(per_thread, total)


def _combine(*groups: Iterable[ModelCost]) -> Cost:
    merged: dict[str, ModelCost] = {}
    for group in groups:
        for item in group:
            merged[item.model] = merged[item.model] + item if item.model in merged else item
    return Cost(tuple(merged[name] for name in sorted(merged)))


# -- configuration -------------------------------------------------------------------------------


def price_table(prices: PriceSettings) -> PriceTable:
    """The catalogue's prices with MODEL_PRICES laid over them."""
    schedules = dict(_CATALOGUE_SCHEDULES)
    for name, price in prices.model_prices.items():
        schedules[normalise(name)] = (
            PriceFrom(None, ModelPrice(price.input, price.output, price.cached_input)),
        )
    return PriceTable._of(schedules)
