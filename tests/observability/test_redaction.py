"""The redaction processor: no credential and no long body survives into a log line."""

from __future__ import annotations

from typing import Any

import pytest

from messagedb_agent.observability.redaction import MASK, Redactor, is_sensitive, scrub

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJlLWJ5dGVz"


def redact(max_chars: int = 200, **fields: Any) -> dict[str, Any]:
    return dict(Redactor(max_chars)(None, "info", dict(fields)))


@pytest.mark.parametrize(
    "key",
    [
        "authorization",
        "Authorization",
        "access_token",
        "token",
        "password",
        "db_password",
        "jwt_hs256_secret",
        "client_secret",
        "api_key",
        "X-Api-Key",
        "private_key",
        "cookie",
        "jwt",
    ],
)
def test_sensitive_keys_are_recognised(key: str) -> None:
    assert is_sensitive(key)


@pytest.mark.parametrize(
    "key", ["input_tokens", "output_tokens", "message", "stream_name", "author", "keys"]
)
def test_ordinary_keys_are_not(key: str) -> None:
    assert not is_sensitive(key)


def test_values_under_sensitive_keys_are_masked_and_counts_kept() -> None:
    line = redact(
        authorization=f"Bearer {JWT}",
        jwt_hs256_secret="s3cret-value",
        headers={"X-Api-Key": "k-123", "Accept": "application/json"},
        input_tokens=1200,
        token_count=3,
    )
    assert line["authorization"] == MASK
    assert line["jwt_hs256_secret"] == MASK
    assert line["headers"] == {"X-Api-Key": MASK, "Accept": "application/json"}
    assert (line["input_tokens"], line["token_count"]) == (1200, 3)


def test_credentials_quoted_in_free_text_are_scrubbed() -> None:
    text = (
        f"calling with Authorization: Bearer {JWT} and token {JWT} "
        "to postgresql://agent:hunter2@db.internal:5432/app?sslmode=require "
        "with password=hunter2&x=1 and api_key: AKIA123"
    )
    clean = scrub(text)
    assert JWT not in clean
    assert "hunter2" not in clean
    assert "AKIA123" not in clean
    assert "postgresql://agent:***@db.internal:5432/app" in clean
    assert "Bearer [redacted]" in clean


def test_long_strings_are_cut_to_the_limit_everywhere_but_tracebacks_are_kept_whole() -> None:
    body = "x" * 1000
    trace = "Traceback (most recent call last):\n" + "  frame\n" * 100 + f"Bearer {JWT}"
    line = redact(50, message=body, nested={"items": [body]}, exception=trace)
    assert len(line["message"]) == 50
    assert line["message"].endswith("…")
    assert len(line["nested"]["items"][0]) == 50
    assert line["exception"].startswith("Traceback")
    assert len(line["exception"]) > 500
    assert JWT not in line["exception"]


def test_other_values_are_rendered_as_scrubbed_text() -> None:
    class Url:
        def __str__(self) -> str:
            return "https://user:pw-123@example.com/x"

    line = redact(target=Url(), ok=True, nothing=None)
    assert line["target"] == "https://user:***@example.com/x"
    assert (line["ok"], line["nothing"]) == (True, None)
