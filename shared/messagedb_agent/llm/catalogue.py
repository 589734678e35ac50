"""Every model the agent knows: provider, limits, list prices and lifecycle, in one table.

Limits, prices and dates change more often than the code that calls the models, so they live
here as data, each row naming the page it was read from (read on 2026-11-30), and everything
else asks this module: the cost projection for prices, the settings for retired models, the
engine for a model's default context budget, `messagedb-agent models` for the listing.

Prices are USD per million tokens at the Standard pay-as-you-go list price. Where a price
changes on a published date (a launch price ending, a cache price cut) a row holds each price
with the day it starts, so a call is priced at the rate of the day it was made. Where a
higher rate applies to long prompts, it is held with its threshold. The pages read give no
regional prices for these models, so a model has one price wherever it is served.

Only the standard library is imported: the settings validate MODEL_NAME against this table in
every function's cold start.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Literal

Provider = Literal["gemini", "claude", "offline"]

# The pages the rows were read from.
GOOGLE_LIFECYCLE = (
    "https://docs.cloud.google.com/gemini-enterprise-agent-platform/models/model-versions"
)
GOOGLE_GEMINI_4 = (
    "https://docs.cloud.google.com/gemini-enterprise-agent-platform/models/start/"
    "get-started-with-gemini-4"
)
GOOGLE_GEMINI_3_8_FLASH = (
    "https://docs.cloud.google.com/gemini-enterprise-agent-platform/models/guides/gemini-3-8-flash"
)
GOOGLE_GEMINI_2_5_FLASH_LITE = (
    "https://docs.cloud.google.com/gemini-enterprise-agent-platform/models/gemini/2-5-flash-lite"
)
GEMINI_API_LATEST = "https://ai.google.dev/gemini-api/docs/generate-content/latest-model"
GEMINI_API_PRICING = "https://ai.google.dev/gemini-api/docs/pricing"
VERTEX_PRICING = "https://cloud.google.com/vertex-ai/generative-ai/pricing"
FIREBASE_LOCATIONS = "https://firebase.google.com/docs/ai-logic/locations"
GOOGLE_CLAUDE_SONNET_5_5 = (
    "https://docs.cloud.google.com/gemini-enterprise-agent-platform/models/partner-models/"
    "claude/sonnet-5-5"
)
GOOGLE_CLAUDE_HAIKU_5_5 = (
    "https://docs.cloud.google.com/gemini-enterprise-agent-platform/models/partner-models/"
    "claude/haiku-5-5"
)
GOOGLE_PARTNER_DEPRECATIONS = (
    "https://docs.cloud.google.com/vertex-ai/generative-ai/docs/deprecations/partner-models"
)
ANTHROPIC_MODELS = "https://platform.claude.com/docs/en/about-claude/models/overview"
ANTHROPIC_PRICING = "https://platform.claude.com/docs/en/about-claude/pricing"
ANTHROPIC_SONNET_4_5 = "https://platform.claude.com/docs/en/models/sonnet-4-5/overview"
ANTHROPIC_SONNET_4_6 = "https://platform.claude.com/docs/en/models/sonnet-4-6/overview"
ANTHROPIC_OPUS_5_5 = "https://platform.claude.com/docs/en/models/opus-5-5/overview"

# A name that follows a family's name is a version of it only with one of these tails: a
# Gemini stable version (`-001`), a Claude date (`-20250929`, or `@20250929` on Vertex), or a
# preview or alias tag. `claude-sonnet-4-5` is therefore not a version of `claude-sonnet-4`,
# nor `gemini-2.5-flash-image` of `gemini-2.5-flash`.
_VERSION_TAIL = re.compile(r"(?:@.+|-\d{3}|-\d{8}|-(?:preview|latest|exp)(?:-.*)?)")
# Names a client reports that are not the configured name.
ALIASES: Mapping[str, str] = {"offline-stand-in": "offline"}


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens. `cached_input` is the rate of input tokens served from the
    prompt cache (None: billed as ordinary input). A call whose prompt has more than
    `long_prompt_above` tokens pays `long_prompt` for all of its tokens, as Google and
    Anthropic bill their long-context tiers."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    long_prompt_above: int | None = None
    long_prompt: Price | None = None

    def for_prompt(self, input_tokens: int) -> Price:
        """The rates a call with this many prompt tokens pays."""
        above = self.long_prompt_above
        if above is not None and self.long_prompt is not None and input_tokens > above:
            return self.long_prompt
        return self


@dataclass(frozen=True, slots=True)
class PriceFrom:
    """A price in force from `since` (inclusive) until the next one starts; None: always."""

    since: date | None
    price: Price


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One model. `retires` with `retires_at_earliest` is Google's "not sooner than" date (the
    model stays at least until then); without it, the day the model stops answering.
    `replacement` is the model its provider names instead, when it has named one."""

    id: str
    provider: Provider
    context_window: int
    max_output_tokens: int
    prices: tuple[PriceFrom, ...]
    sources: tuple[str, ...]
    released: date | None = None
    retires: date | None = None
    retires_at_earliest: bool = False
    replacement: str | None = None

    def price_on(self, day: date | None = None) -> Price | None:
        """The price in force on `day` (today when None)."""
        day = day or today()
        found: Price | None = None
        for period in self.prices:
            if period.since is None or period.since <= day:
                found = period.price
        return found

    def retired(self, day: date | None = None) -> bool:
        """Whether the model no longer answers on `day`: from its retirement date on."""
        if self.retires is None or self.retires_at_earliest:
            return False
        return (day or today()) >= self.retires

    def status(self, day: date | None = None) -> str:
        """Its lifecycle in a few words: GA, retiring on DATE, deprecated or retired."""
        day = day or today()
        if self.provider == "offline":
            return "offline stand-in"
        instead = f" → {self.replacement}" if self.replacement else ""
        if self.retired(day):
            return f"retired {self.retires}{instead}"
        if self.retires is not None and not self.retires_at_earliest:
            return f"retiring on {self.retires}{instead}"
        if self.replacement:
            return f"deprecated{instead}"
        if self.retires is not None:
            return f"GA, until at least {self.retires}"
        return "GA"


def today() -> date:
    return datetime.now(UTC).date()


def _price(
    input_: str,
    cached: str | None,
    output: str,
    *,
    above: int | None = None,
    long: Price | None = None,
) -> Price:
    return Price(Decimal(input_), Decimal(output), Decimal(cached) if cached else None, above, long)


def _always(price: Price) -> tuple[PriceFrom, ...]:
    return (PriceFrom(None, price),)


_MILLION = 1_048_576  # Gemini's "1M" context window

MODELS: tuple[ModelInfo, ...] = (
    # -- Gemini on Vertex AI (Gemini Enterprise Agent Platform) ------------------------------
    ModelInfo(
        # The window is shared: input and output together may not pass 1,048,576 tokens.
        # Launch price until 2026-11-30, then double (Gemini API pages; the Vertex pricing
        # page was not available to check).
        "gemini-4-argon",
        "gemini",
        _MILLION,
        _MILLION,
        (
            PriceFrom(None, _price("2.00", "0.10", "10.00")),
            PriceFrom(date(2026, 12, 1), _price("4.00", "0.20", "20.00")),
        ),
        (GOOGLE_LIFECYCLE, GOOGLE_GEMINI_4, GEMINI_API_LATEST),
        released=date(2026, 10, 13),
        retires=date(2027, 10, 13),
        retires_at_earliest=True,
    ),
    ModelInfo(
        # Half price until 2026-12-31 (Gemini API pricing).
        "gemini-3.8-flash",
        "gemini",
        _MILLION,
        65_536,
        (
            PriceFrom(None, _price("0.75", "0.075", "3.75")),
            PriceFrom(date(2027, 1, 1), _price("1.50", "0.15", "7.50")),
        ),
        (GOOGLE_LIFECYCLE, GOOGLE_GEMINI_3_8_FLASH, GEMINI_API_PRICING),
        released=date(2026, 9, 2),
        retires=date(2027, 9, 2),
        retires_at_earliest=True,
    ),
    ModelInfo(
        "gemini-3.5-flash",
        "gemini",
        _MILLION,
        65_536,
        _always(_price("1.50", "0.15", "9.00")),
        (GOOGLE_LIFECYCLE, GEMINI_API_PRICING),
        released=date(2026, 5, 19),
        retires=date(2027, 5, 19),
        retires_at_earliest=True,
    ),
    ModelInfo(
        "gemini-3.5-flash-lite",
        "gemini",
        _MILLION,
        65_536,
        _always(_price("0.30", "0.03", "2.50")),
        (GOOGLE_LIFECYCLE, GEMINI_API_PRICING),
        released=date(2026, 7, 21),
        retires=date(2027, 7, 21),
        retires_at_earliest=True,
    ),
    ModelInfo(
        "gemini-3.1-flash-lite",
        "gemini",
        _MILLION,
        65_536,
        _always(_price("0.25", "0.025", "1.50")),
        (GOOGLE_LIFECYCLE, GEMINI_API_PRICING),
        released=date(2026, 5, 7),
        retires=date(2027, 5, 7),
        retires_at_earliest=True,
    ),
    ModelInfo(
        "gemini-2.5-pro",
        "gemini",
        _MILLION,
        65_536,
        _always(
            _price("1.25", "0.125", "10.00", above=200_000, long=_price("2.50", "0.25", "15.00"))
        ),
        (GOOGLE_LIFECYCLE, VERTEX_PRICING),
        released=date(2025, 6, 17),
        retires=date(2026, 10, 20),
        replacement="gemini-3.8-flash",
    ),
    ModelInfo(
        "gemini-2.5-flash",
        "gemini",
        _MILLION,
        65_536,
        _always(_price("0.30", "0.03", "2.50")),
        (GOOGLE_LIFECYCLE, VERTEX_PRICING),
        released=date(2025, 6, 17),
        retires=date(2026, 10, 20),
        replacement="gemini-3.8-flash",
    ),
    ModelInfo(
        "gemini-2.5-flash-lite",
        "gemini",
        _MILLION,
        65_536,
        _always(_price("0.10", "0.01", "0.40")),
        (GOOGLE_LIFECYCLE, GOOGLE_GEMINI_2_5_FLASH_LITE, VERTEX_PRICING),
        released=date(2025, 7, 22),
        retires=date(2026, 10, 20),
        replacement="gemini-3.5-flash-lite",
    ),
    ModelInfo(
        "gemini-2.0-flash",
        "gemini",
        _MILLION,
        8_192,
        _always(_price("0.15", "0.0375", "0.60")),
        (FIREBASE_LOCATIONS, VERTEX_PRICING),
        released=date(2025, 2, 5),
        retires=date(2026, 6, 1),
        replacement="gemini-3.1-flash-lite",
    ),
    ModelInfo(
        "gemini-2.0-flash-lite",
        "gemini",
        _MILLION,
        8_192,
        _always(_price("0.075", None, "0.30")),
        (FIREBASE_LOCATIONS, VERTEX_PRICING),
        released=date(2025, 2, 25),
        retires=date(2026, 6, 1),
        replacement="gemini-3.1-flash-lite",
    ),
    # -- Claude on Vertex AI ------------------------------------------------------------------
    ModelInfo(
        # Anthropic cut the cache-read price on 2026-10-07.
        "claude-sonnet-5-5",
        "claude",
        1_000_000,
        128_000,
        (
            PriceFrom(None, _price("2.00", "0.20", "10.00")),
            PriceFrom(date(2026, 10, 7), _price("2.00", "0.10", "10.00")),
        ),
        (GOOGLE_CLAUDE_SONNET_5_5, ANTHROPIC_PRICING),
        released=date(2026, 9, 28),
        retires=date(2027, 9, 28),
        retires_at_earliest=True,
    ),
    ModelInfo(
        "claude-haiku-5-5",
        "claude",
        1_000_000,
        128_000,
        _always(_price("0.10", "0.01", "0.50", above=100_000, long=_price("0.50", "0.05", "2.50"))),
        (GOOGLE_CLAUDE_HAIKU_5_5, ANTHROPIC_PRICING),
        released=date(2026, 10, 7),
        retires=date(2027, 10, 7),
        retires_at_earliest=True,
    ),
    ModelInfo(
        # Google's page for this model was not among the stored pages: no Vertex dates.
        "claude-opus-5-5",
        "claude",
        1_000_000,
        128_000,
        _always(_price("4.00", "0.20", "20.00")),
        (ANTHROPIC_OPUS_5_5, ANTHROPIC_PRICING),
    ),
    ModelInfo(
        "claude-sonnet-4-6",
        "claude",
        1_000_000,
        128_000,
        _always(_price("3.00", "0.30", "15.00")),
        (ANTHROPIC_SONNET_4_6, ANTHROPIC_PRICING),
        released=date(2026, 2, 17),
    ),
    ModelInfo(
        "claude-haiku-4-5",
        "claude",
        200_000,
        64_000,
        _always(_price("1.00", "0.10", "5.00")),
        (ANTHROPIC_MODELS, ANTHROPIC_PRICING),
        released=date(2025, 10, 1),
    ),
    ModelInfo(
        # Anthropic deprecated it and retires it on its own API on 2026-11-30; Google Cloud
        # sets its own date, and none was published on the pages read.
        "claude-sonnet-4-5",
        "claude",
        200_000,
        64_000,
        _always(_price("3.00", "0.30", "15.00")),
        (ANTHROPIC_SONNET_4_5, ANTHROPIC_PRICING),
        released=date(2025, 9, 29),
        replacement="claude-sonnet-5-5",
    ),
    ModelInfo(
        "claude-3-5-haiku",
        "claude",
        200_000,
        8_000,
        _always(_price("0.80", "0.08", "4.00")),
        (GOOGLE_PARTNER_DEPRECATIONS, ANTHROPIC_PRICING),
        released=date(2024, 10, 22),
        retires=date(2026, 7, 5),
        replacement="claude-haiku-4-5",
    ),
    # -- the deterministic stand-in -------------------------------------------------------------
    ModelInfo(
        # A small window, so long threads reach the context budget (and its summaries) in
        # local runs and tests, as they would on a real model only after hours.
        "offline",
        "offline",
        32_768,
        8_192,
        _always(_price("0", "0", "0")),
        ("messagedb_agent.llm.offline",),
    ),
)

CATALOGUE: Mapping[str, ModelInfo] = {model.id: model for model in MODELS}


def normalise(model: str) -> str:
    """The bare, lower-case model name: `publishers/google/models/` and the like dropped."""
    name = model.strip().lower().rsplit("/", 1)[-1]
    return ALIASES.get(name, name)


def family_of(model: str, families: Iterable[str]) -> str | None:
    """The family among `families` that `model` is, or is a version of; the longest wins, so
    `gemini-2.5-flash-lite-001` is Flash-Lite, not Flash. `families` must be normalised."""
    name = normalise(model)
    if not name:
        return None
    for family in sorted(families, key=len, reverse=True):
        if name == family:
            return family
        if name.startswith(family) and _VERSION_TAIL.fullmatch(name[len(family) :]):
            return family
    return None


def lookup(model: str) -> ModelInfo | None:
    """The catalogue's row for `model`, a versioned name of it (`claude-sonnet-5-5@20260928`,
    `gemini-2.5-flash-001`) or its full resource name; None for a model it does not know."""
    family = family_of(model, CATALOGUE)
    return CATALOGUE[family] if family is not None else None


def successor(info: ModelInfo, day: date | None = None) -> str | None:
    """The model to use instead of a retired or deprecated one: its named replacement, or, when
    that has retired too, that one's replacement in turn."""
    seen = {info.id}
    current = info
    while current.replacement and current.replacement not in seen:
        seen.add(current.replacement)
        following = CATALOGUE.get(current.replacement)
        if following is None or not following.retired(day):
            return current.replacement
        current = following
    return None


def retired_problem(model: str, day: date | None = None) -> str | None:
    """Why `model` cannot be configured, when the catalogue knows it has retired."""
    info = lookup(model)
    if info is None or not info.retired(day):
        return None
    instead = successor(info, day)
    advice = f"; use {instead} instead" if instead else ""
    return f"MODEL_NAME={model} was retired on {info.retires}{advice}"


def default_context_budget(model: str) -> int | None:
    """Tokens a call's context may hold before older turns are summarised: half the window.

    Agent frameworks set this trigger as a share of the window: LangChain's summarization
    middleware takes a fraction of the model's maximum input tokens, ADK's context compaction a
    token threshold chosen for the model. Half is the choice here, for three reasons. The reply
    must fit beside the context, and half the window leaves room for the largest output any
    model here allows (window minus output would leave nothing for a model whose window is
    shared with its output, like gemini-4-argon). A step also adds tool results after the
    budget is checked, and they need room. And every call pays for its whole context, so
    summarising at half rather than near the limit halves the price of the longest calls.

    None for a model the catalogue does not know; CONTEXT_BUDGET_TOKENS overrides it.
    """
    info = lookup(model)
    return info.context_window // 2 if info is not None else None
