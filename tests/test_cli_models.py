"""`messagedb-agent models`: the catalogue as a table or JSON, and a live tool-calling check
against a Vertex endpoint (here the local stand-in, through the real SDK clients)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import google.auth
import pytest
from google.oauth2.credentials import Credentials
from tests.llm.fake_vertex import FakeVertex, gemini_reply
from typer.testing import CliRunner, Result

from messagedb_agent.cli import app
from messagedb_agent.llm.catalogue import MODELS
from messagedb_agent.settings.agent import DEFAULT_MODEL

PROJECT = "demo-project"


class Invoke(Protocol):
    def __call__(self, *args: str, **env: str | None) -> Result: ...


@pytest.fixture
def vertex() -> Iterator[FakeVertex]:
    server = FakeVertex().start()
    yield server
    server.stop()


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """The CLI in an empty folder, with Application Default Credentials that hold a static
    token (google-auth never refreshes a token without an expiry, so nothing leaves the host)."""
    monkeypatch.chdir(tmp_path)

    def default_credentials(*args: Any, **kwargs: Any) -> tuple[Credentials, str]:
        return Credentials(token="test-token"), PROJECT

    monkeypatch.setattr(google.auth, "default", default_credentials)
    runner = CliRunner()

    def invoke(*args: str, **env: str | None) -> Result:
        base: dict[str, str | None] = {
            "MODEL_NAME": None,
            "GOOGLE_CLOUD_PROJECT": None,
            "GOOGLE_CLOUD_LOCATION": None,
            "VERTEX_API_ENDPOINT": None,
        }
        return runner.invoke(app, ["models", *args], env=base | env)

    return invoke


def test_the_listing_shows_every_model_with_its_limits_prices_and_status(run: Invoke) -> None:
    result = run(GOOGLE_CLOUD_PROJECT=PROJECT)

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    [configured] = [line for line in lines if line.startswith(f"* {DEFAULT_MODEL} ")]
    assert "1,048,576" in configured
    assert "0.75" in configured
    assert "$1.50/0.15/7.50 from 2027-01-01" in configured
    [retired] = [line for line in lines if " gemini-2.5-flash " in line]
    assert "retired 2026-10-20 → gemini-3.8-flash" in retired
    assert lines[-1] == f"* configured: {DEFAULT_MODEL} (location global)"
    assert len([line for line in lines if line[2:].split(" ")[0] in {m.id for m in MODELS}]) == (
        len(MODELS)
    )


def test_the_json_listing_marks_the_configured_model_by_its_family(run: Invoke) -> None:
    result = run("--json", MODEL_NAME="claude-sonnet-5-5@20260928")

    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["configured"] == "claude-sonnet-5-5@20260928"
    assert [model["id"] for model in document["models"]] == [model.id for model in MODELS]
    [marked] = [model for model in document["models"] if model["configured"]]
    assert marked["id"] == "claude-sonnet-5-5"
    assert marked["context_window"] == 1_000_000
    assert marked["default_context_budget"] == 500_000
    assert marked["price"]["output"] == 10.0
    assert marked["retires"] == "2027-09-28"
    assert marked["sources"]


def test_a_gemini_model_passes_a_tool_calling_round_trip(run: Invoke, vertex: FakeVertex) -> None:
    vertex.reply(gemini_reply({"functionCall": {"name": "echo", "args": {"text": "ping"}}}))
    vertex.reply(gemini_reply({"text": "The echo tool returned ping."}))

    result = run(
        "check",
        GOOGLE_CLOUD_PROJECT=PROJECT,
        VERTEX_API_ENDPOINT=vertex.url,
        MODEL_NAME="gemini-3.8-flash",
    )

    assert result.exit_code == 0, result.output
    assert result.output.startswith("pass  gemini-3.8-flash: called echo")
    assert "The echo tool returned ping." in result.output
    first, second = vertex.requests
    assert first.params == {
        "project": PROJECT,
        "location": "global",
        "model": "gemini-3.8-flash",
        "method": "generateContent",
    }
    assert first.body["tools"][0]["functionDeclarations"][0]["name"] == "echo"
    # the result went back with the call's thought signature (the stand-in refuses it without)
    answer = second.body["contents"][-1]["parts"][0]["functionResponse"]
    assert answer["response"] == {"text": "ping"}


def test_an_unknown_model_fails_with_the_providers_404_and_exit_code_1(
    run: Invoke, vertex: FakeVertex
) -> None:
    vertex.reply(gemini_reply({"functionCall": {"name": "echo", "args": {"text": "ping"}}}))
    vertex.reply(gemini_reply({"text": "ping"}))

    result = run(
        "check",
        "gemini-9-flash",
        "gemini-3.8-flash",
        GOOGLE_CLOUD_PROJECT=PROJECT,
        VERTEX_API_ENDPOINT=vertex.url,
    )

    assert result.exit_code == 1
    failed, passed = result.output.splitlines()
    assert failed.startswith("FAIL  gemini-9-flash: model_not_found (HTTP 404) at global:")
    assert (
        "Publisher Model `projects/demo-project/locations/global/publishers/google/models/"
        "gemini-9-flash` was not found or your project does not have access to it"
    ) in failed
    assert passed.startswith("pass  gemini-3.8-flash:")


def test_a_model_that_does_not_call_the_tool_fails(run: Invoke, vertex: FakeVertex) -> None:
    vertex.reply(gemini_reply({"text": "I would rather not."}))

    result = run(
        "check", "gemini-3.5-flash", GOOGLE_CLOUD_PROJECT=PROJECT, VERTEX_API_ENDPOINT=vertex.url
    )

    assert result.exit_code == 1
    assert "FAIL  gemini-3.5-flash: answered without calling the tool: 'I would rather not.'" in (
        result.output
    )


def test_retired_and_offline_models_are_decided_without_a_call(
    run: Invoke, vertex: FakeVertex
) -> None:
    result = run(
        "check",
        "offline",
        "gemini-2.5-flash-001",
        GOOGLE_CLOUD_PROJECT=PROJECT,
        VERTEX_API_ENDPOINT=vertex.url,
    )

    assert result.exit_code == 1
    offline, retired = result.output.splitlines()
    assert offline.startswith("pass  offline:")
    assert retired == (
        "FAIL  gemini-2.5-flash-001: retired on 2026-10-20; use gemini-3.8-flash instead"
    )
    assert vertex.requests == []


def test_a_retired_configured_model_stops_the_command_with_the_replacement(run: Invoke) -> None:
    result = run(MODEL_NAME="gemini-2.0-flash")

    assert result.exit_code == 2
    assert "MODEL_NAME=gemini-2.0-flash was retired on 2026-06-01; use gemini-3.1-flash-lite" in (
        result.output
    )
