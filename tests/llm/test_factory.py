"""Choosing a client by model name, and keeping provider SDKs out of imports that need none."""

from __future__ import annotations

import subprocess
import sys

import pytest
from google.oauth2.credentials import Credentials
from tests.llm.fake_vertex import FakeVertex, claude_reply, gemini_reply

from messagedb_agent.llm.claude import ClaudeModel
from messagedb_agent.llm.factory import create_client
from messagedb_agent.llm.gemini import GeminiModel
from messagedb_agent.llm.offline import OfflineModel
from messagedb_agent.llm.types import LLMConfig, UserTurn


def test_offline_needs_no_project() -> None:
    client = create_client("offline", project=None, location="us-central1")

    assert isinstance(client, OfflineModel)
    reply = client.call([UserTurn("echo hi")], [], LLMConfig(model="offline"))
    assert reply.model_name == "offline-stand-in"


def test_gemini_names_get_a_gemini_client_on_the_given_endpoint(
    vertex: FakeVertex, credentials: Credentials
) -> None:
    client = create_client(
        "gemini-2.5-flash",
        project="p1",
        location="europe-west4",
        base_url=vertex.url,
        credentials=credentials,
    )
    vertex.reply(gemini_reply({"text": "hi"}))

    reply = client.call([UserTurn("hi")], [], LLMConfig(model="gemini-2.5-flash"))

    assert isinstance(client, GeminiModel)
    assert reply.text == "hi"
    assert vertex.last.params == {
        "project": "p1",
        "location": "europe-west4",
        "model": "gemini-2.5-flash",
        "method": "generateContent",
    }


def test_claude_names_get_a_claude_client_on_the_given_endpoint(
    vertex: FakeVertex, credentials: Credentials
) -> None:
    model = "claude-opus-4-1@20250805"
    client = create_client(
        model, project="p2", location="us-east5", base_url=vertex.url, credentials=credentials
    )
    vertex.reply(claude_reply({"type": "text", "text": "hello"}))

    reply = client.call([UserTurn("hi")], [], LLMConfig(model=model))

    assert isinstance(client, ClaudeModel)
    assert reply.text == "hello"
    assert vertex.last.params == {
        "project": "p2",
        "location": "us-east5",
        "model": model,
        "method": "rawPredict",
    }


def test_an_unknown_model_name_lists_the_accepted_forms() -> None:
    with pytest.raises(ValueError, match="gpt-4o") as raised:
        create_client("gpt-4o", project="p", location="us-central1")

    message = str(raised.value)
    assert '"offline"' in message
    assert '"gemini-*"' in message
    assert '"claude-*"' in message


@pytest.mark.parametrize("model", ["gemini-2.5-pro", "claude-sonnet-4-5@20250929"])
def test_a_vertex_model_without_a_project_says_what_to_set(model: str) -> None:
    with pytest.raises(ValueError, match="GOOGLE_CLOUD_PROJECT") as raised:
        create_client(model, project=None, location="us-central1")

    assert "MODEL_NAME=offline" in str(raised.value)


def test_importing_the_llm_layer_does_not_import_provider_sdks() -> None:
    probe = (
        "import sys\n"
        "import messagedb_agent.llm, messagedb_agent.llm.factory, messagedb_agent.llm.offline\n"
        "import messagedb_agent.llm.errors, messagedb_agent.llm.types\n"
        "heavy = sorted(m for m in sys.modules if m.startswith(('google.genai', 'anthropic')))\n"
        "print(','.join(heavy))\n"
    )

    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )

    assert result.stdout.strip() == ""
