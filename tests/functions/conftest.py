"""The functions as functions-framework serves them, against the real database and emulator."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import functions_framework
import pytest
from flask import Flask
from flask.testing import FlaskClient
from tests.pubsub.emulator import Emulator, pubsub_emulator

from messagedb_agent.runtime import Runtime

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"

__all__ = ["pubsub_emulator"]


@pytest.fixture
def topic(pubsub_emulator: Emulator) -> str:
    return pubsub_emulator.topic()


@pytest.fixture
def function_env(
    monkeypatch: pytest.MonkeyPatch, database_url: str, pubsub_emulator: Emulator, topic: str
) -> pytest.MonkeyPatch:
    """The environment the local stack gives a function; tests may change it before loading."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator.host)
    monkeypatch.setenv("PUBSUB_PROJECT", pubsub_emulator.project)
    monkeypatch.setenv("PUBSUB_TOPIC", topic)
    monkeypatch.setenv("MODEL_NAME", "offline")
    monkeypatch.delenv("LOCAL_TOPIC_URL", raising=False)
    return monkeypatch


@pytest.fixture
def load_function(function_env: pytest.MonkeyPatch) -> Iterator[Callable[[str], FlaskClient]]:
    """Load functions/<name>/main.py as functions-framework does and give a test client."""
    runtimes: list[Runtime] = []

    def load(name: str) -> FlaskClient:
        app: Flask = functions_framework.create_app(  # type: ignore[no-untyped-call]
            name, str(FUNCTIONS / name / "main.py")
        )
        runtimes.append(sys.modules["main"].runtime)
        return app.test_client()

    yield load
    for runtime in runtimes:
        runtime.close()
