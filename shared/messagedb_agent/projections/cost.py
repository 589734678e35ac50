"""What a thread's model calls cost: its token usage priced per model, in US dollars.

The projection is pure (events and a price table in, a value out); prices are configuration,
because they change more often than the code: MODEL_PRICES overrides or extends the defaults
below (USD per million tokens, Vertex AI list prices for prompts up to 200k tokens). Amounts
are `Decimal`, so summing thousands of tiny calls does not drift. A model with no price is
counted and named, never guessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from messagedb_agent.events.agent import LLMCallRequested, LLMResponseReceived
from messagedb_agent.events.base import Event, Recorded
from messagedb_agent.settings.agent import PriceSettings

PER_MILLION = Decimal(1_000_000)
UNKNOWN_MODEL = "unknown"


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million input (prompt) and output (completion) tokens."""

    input_per_million: Decimal
    output_per_million: Decimal

    def cost(self, input_tokens: int, output_tokens: int) -> Decimal:
        return (
            self.input_per_million * input_tokens + self.output_per_million * output_tokens
        ) / PER_MILLION


DEFAULT_PRICES: Mapping[str, ModelPrice] = {
    "gemini-2.5-flash": ModelPrice(Decimal("0.30"), Decimal("2.50")),
    "gemini-2.5-flash-lite": ModelPrice(Decimal("0.10"), Decimal("0.40")),
    "gemini-2.5-pro": ModelPrice(Decimal("1.25"), Decimal("10.00")),
    "claude-sonnet-4-5": ModelPrice(Decimal("3.00"), Decimal("15.00")),
    "offline": ModelPrice(Decimal(0), Decimal(0)),
}


class PriceTable:
    """Prices by model name; a versioned name (`claude-sonnet-4-5@20250929`,
    `claude-sonnet-4-5-20250929`, `gemini-2.5-flash-001`) takes its family's price."""

    def __init__(self, prices: Mapping[str, ModelPrice] = DEFAULT_PRICES) -> None:
        self.prices = {name.lower(): price for name, price in prices.items()}
        # Longest first, so `gemini-2.5-flash-lite` is not priced as `gemini-2.5-flash`.
        self._families = sorted(self.prices, key=len, reverse=True)

    def price_of(self, model: str) -> ModelPrice | None:
        name = model.lower().rsplit("/", 1)[-1]  # `publishers/google/models/gemini-...`
        exact = self.prices.get(name) or self.prices.get(name.split("@", 1)[0])
        if exact is not None:
            return exact
        for family in self._families:
            if name.startswith(family) and name[len(family)] in "-@":
                return self.prices[family]
        return None


@dataclass(frozen=True, slots=True)
class ModelCost:
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0
    usd: Decimal = Decimal(0)
    priced: bool = True

    def __add__(self, other: ModelCost) -> ModelCost:
        return ModelCost(
            self.model,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.calls + other.calls,
            self.usd + other.usd,
            self.priced and other.priced,
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
    def unpriced_models(self) -> tuple[str, ...]:
        return tuple(item.model for item in self.by_model if not item.priced)

    def __add__(self, other: Cost) -> Cost:
        return _combine(self.by_model, other.by_model)


@dataclass(frozen=True, slots=True)
class UserCost:
    """A user's spending: each thread's cost (by stream name) and the sum of them all."""

    threads: Mapping[str, Cost] = field(default_factory=dict)
    total: Cost = field(default_factory=Cost)


def project_cost(events: Sequence[Recorded[Event]], prices: PriceTable | None = None) -> Cost:
    """The priced token usage of every model response in a thread.

    A response is priced by the model that answered (`model_name`), or, when a provider did
    not say, the model its claim asked for. Failed calls report no usage and cost nothing here.
    """
    table = prices or PriceTable()
    claimed: dict[str, str] = {}
    calls: list[ModelCost] = []
    for recorded in events:
        event = recorded.event
        if isinstance(event, LLMCallRequested):
            claimed[event.step_id] = event.model
        elif isinstance(event, LLMResponseReceived):
            model = event.model_name or claimed.get(event.step_id) or UNKNOWN_MODEL
            usage = event.token_usage
            price = table.price_of(model)
            calls.append(
                ModelCost(
                    model,
                    usage.input_tokens,
                    usage.output_tokens,
                    1,
                    price.cost(usage.input_tokens, usage.output_tokens) if price else Decimal(0),
                    price is not None,
                )
            )
    return _combine(calls)


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
    """The defaults with MODEL_PRICES laid over them."""
    table = dict(DEFAULT_PRICES)
    for name, price in prices.model_prices.items():
        table[name] = ModelPrice(price.input, price.output)
    return PriceTable(table)
