"""Fixtures for the LLM layer: a local Vertex endpoint and the real SDK clients pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google.oauth2.credentials import Credentials
from tests.llm.fake_vertex import FakeVertex

from messagedb_agent.llm.claude import ClaudeModel
from messagedb_agent.llm.gemini import GeminiModel

PROJECT = "demo-project"
LOCATION = "us-central1"
TOKEN = "test-token"


@pytest.fixture
def vertex() -> Iterator[FakeVertex]:
    server = FakeVertex().start()
    yield server
    server.stop()


@pytest.fixture
def credentials() -> Credentials:
    """A static bearer token: google-auth never refreshes a token that has no expiry."""
    return Credentials(token=TOKEN)  # type: ignore[no-untyped-call]


@pytest.fixture
def gemini(vertex: FakeVertex, credentials: Credentials) -> GeminiModel:
    return GeminiModel(
        project=PROJECT, location=LOCATION, base_url=vertex.url, credentials=credentials
    )


@pytest.fixture
def claude(vertex: FakeVertex, credentials: Credentials) -> ClaudeModel:
    return ClaudeModel(
        project=PROJECT, location=LOCATION, base_url=vertex.url, credentials=credentials
    )
