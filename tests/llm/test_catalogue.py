"""The model catalogue: well-formed rows, name lookup, lifecycle, prices by date, budgets."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from tests.imports import loaded_by

from messagedb_agent.llm import catalogue
from messagedb_agent.llm.catalogue import (
    CATALOGUE,
    MODELS,
    ModelInfo,
    Price,
    PriceFrom,
    default_context_budget,
    lookup,
    retired_problem,
    successor,
)

TODAY = date(2026, 11, 30)


def _model(id: str, **changes: object) -> ModelInfo:
    fields: dict[str, object] = {
        "id": id,
        "provider": "gemini",
        "context_window": 1000,
        "max_output_tokens": 100,
        "prices": (PriceFrom(None, Price(Decimal(1), Decimal(2))),),
        "sources": ("https://example.com/model",),
    }
    return ModelInfo(**(fields | changes))  # type: ignore[arg-type]


@pytest.mark.parametrize("info", MODELS, ids=lambda info: info.id)
def test_every_row_is_complete_and_cites_its_pages(info: ModelInfo) -> None:
    assert info.id == info.id.strip().lower()
    assert CATALOGUE[info.id] is info
    assert 0 < info.max_output_tokens <= info.context_window
    assert info.prices
    assert info.prices[0].since is None  # priced whatever the day
    starts = [p.since for p in info.prices[1:]]
    assert starts == sorted(d for d in starts if d is not None)
    if info.provider != "offline":
        assert info.sources
        assert all(url.startswith("https://") for url in info.sources)
    if info.replacement is not None:
        assert info.replacement in CATALOGUE
    if info.retires is not None and info.released is not None:
        assert info.released < info.retires


def test_ids_are_unique() -> None:
    assert len(CATALOGUE) == len(MODELS)


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("gemini-3.8-flash", "gemini-3.8-flash"),
        ("Gemini-3.8-Flash ", "gemini-3.8-flash"),
        ("gemini-2.5-flash-001", "gemini-2.5-flash"),
        ("gemini-2.5-flash-lite-001", "gemini-2.5-flash-lite"),
        ("gemini-2.5-flash-lite-preview-06-17", "gemini-2.5-flash-lite"),
        ("publishers/google/models/gemini-2.5-pro", "gemini-2.5-pro"),
        ("projects/p/locations/global/publishers/google/models/gemini-4-argon", "gemini-4-argon"),
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-haiku-4-5@20251001", "claude-haiku-4-5"),
        ("claude-sonnet-5-5", "claude-sonnet-5-5"),
        ("offline-stand-in", "offline"),
    ],
)
def test_a_versioned_or_resource_name_finds_its_family(name: str, family: str) -> None:
    info = lookup(name)
    assert info is not None
    assert info.id == family


@pytest.mark.parametrize(
    "name",
    [
        "",
        "gpt-4o",
        "gemini-2.5-flashy",
        "gemini-2.5-flash-image",  # another model, not a version of 2.5 Flash
        "claude-sonnet-4",  # a prefix of claude-sonnet-4-5, not a version of it
        "claude-sonnet-5-5-fast",
        "gemini-3.7-flash",
    ],
)
def test_a_name_that_only_looks_like_a_model_finds_nothing(name: str) -> None:
    assert lookup(name) is None


def test_the_status_says_ga_retiring_deprecated_or_retired() -> None:
    assert CATALOGUE["gemini-3.8-flash"].status(TODAY) == "GA, until at least 2027-09-02"
    assert CATALOGUE["claude-sonnet-4-6"].status(TODAY) == "GA"
    assert CATALOGUE["claude-sonnet-4-5"].status(TODAY) == "deprecated → claude-sonnet-5-5"
    assert CATALOGUE["gemini-2.5-flash"].status(TODAY) == "retired 2026-10-20 → gemini-3.8-flash"
    retiring = _model("m", retires=date(2027, 1, 22), replacement="gemini-3.8-flash")
    assert retiring.status(TODAY) == "retiring on 2027-01-22 → gemini-3.8-flash"
    assert retiring.status(date(2027, 1, 22)) == "retired 2027-01-22 → gemini-3.8-flash"


def test_a_model_is_retired_from_its_retirement_date_and_never_by_a_not_sooner_than_date() -> None:
    gemini_25 = CATALOGUE["gemini-2.5-flash"]
    assert not gemini_25.retired(date(2026, 10, 19))
    assert gemini_25.retired(date(2026, 10, 20))
    assert not CATALOGUE["gemini-3.8-flash"].retired(date(2030, 1, 1))


def test_a_price_applies_from_its_start_date() -> None:
    flash = CATALOGUE["gemini-3.8-flash"]
    december, january = flash.price_on(date(2026, 12, 31)), flash.price_on(date(2027, 1, 1))
    assert december == Price(Decimal("0.75"), Decimal("3.75"), Decimal("0.075"))
    assert january == Price(Decimal("1.50"), Decimal("7.50"), Decimal("0.15"))


def test_a_long_prompt_takes_the_long_context_rates() -> None:
    price = CATALOGUE["claude-haiku-5-5"].price_on(TODAY)
    assert price is not None
    assert price.for_prompt(100_000) is price
    assert price.for_prompt(100_001) == Price(Decimal("0.50"), Decimal("2.50"), Decimal("0.05"))


def test_a_retired_model_names_its_replacement() -> None:
    assert retired_problem("gemini-2.5-pro-002", TODAY) == (
        "MODEL_NAME=gemini-2.5-pro-002 was retired on 2026-10-20; use gemini-3.8-flash instead"
    )
    for current in ("gemini-3.8-flash", "claude-sonnet-4-5@20250929", "gemini-9-ultra"):
        assert retired_problem(current, TODAY) is None
    assert retired_problem("gemini-2.5-flash", date(2026, 10, 19)) is None


def test_the_successor_of_a_retired_model_skips_replacements_that_retired_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chain = {
        "a": _model("a", retires=date(2025, 1, 1), replacement="b"),
        "b": _model("b", retires=date(2026, 1, 1), replacement="c"),
        "c": _model("c"),
        "loop": _model("loop", retires=date(2025, 1, 1), replacement="loop-2"),
        "loop-2": _model("loop-2", retires=date(2025, 1, 1), replacement="loop"),
    }
    monkeypatch.setattr(catalogue, "CATALOGUE", chain)

    assert successor(chain["a"], TODAY) == "c"
    assert successor(chain["a"], date(2025, 6, 1)) == "b"  # b still answered then
    assert successor(chain["loop"], TODAY) is None
    assert retired_problem("a", TODAY) == "MODEL_NAME=a was retired on 2025-01-01; use c instead"


def test_the_default_context_budget_is_half_the_window_and_leaves_room_for_the_reply() -> None:
    assert default_context_budget("gemini-3.8-flash-001") == 524_288
    assert default_context_budget("claude-haiku-4-5@20251001") == 100_000
    assert default_context_budget("gpt-4o") is None
    for info in MODELS:
        budget = default_context_budget(info.id)
        assert budget is not None
        if info.max_output_tokens < info.context_window:  # a window not shared with output
            assert budget + info.max_output_tokens <= info.context_window


def test_importing_the_catalogue_loads_no_sdk_and_no_pydantic() -> None:
    modules = loaded_by(
        "messagedb_agent.llm.catalogue",
        "messagedb_agent",
        "google.genai",
        "google.auth",
        "anthropic",
        "pydantic",
    )
    assert modules == ["messagedb_agent", "messagedb_agent.llm", "messagedb_agent.llm.catalogue"]
