"""The installed command against Vertex AI, as an operator runs it, end to end over HTTP.

`messagedb-agent start` and `continue` run as separate processes with nothing but the
environment an operator sets: the project, the model, a service-account key file and the
Vertex endpoint. google-auth in those processes signs a JWT with the key and trades it for a
token at a strict local token endpoint; the strict Vertex stand-in accepts only that token.
Each provider holds a two-turn conversation with a tool call in each turn, and the second
process must replay the first one's turn exactly as the provider requires.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from google.auth.transport.requests import Request
from google.oauth2 import service_account
from tests.llm.fake_google_auth import (
    CLOUD_PLATFORM_SCOPE,
    GOOGLE_TOKEN_AUDIENCE,
    JWT_BEARER,
    FakeTokenEndpoint,
)
from tests.llm.fake_vertex import FakeVertex, claude_reply, gemini_reply

from messagedb_agent.settings import Settings

PROJECT = "some-project"
COMMAND = Path(sys.executable).with_name("messagedb-agent")


@dataclass(frozen=True)
class Operator:
    """Runs the command the way a person at a shell would, with their environment."""

    env: dict[str, str]
    cwd: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(COMMAND), *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.cwd,
            timeout=180,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done


@pytest.fixture
def token_endpoint() -> Iterator[FakeTokenEndpoint]:
    endpoint = FakeTokenEndpoint().start()
    yield endpoint
    endpoint.stop()


@pytest.fixture
def vertex(token_endpoint: FakeTokenEndpoint) -> Iterator[FakeVertex]:
    server = FakeVertex(authorize=token_endpoint.accepts).start()
    yield server
    server.stop()


def operator(
    model: str,
    database_url: str,
    settings: Settings,
    vertex: FakeVertex,
    token_endpoint: FakeTokenEndpoint,
    tmp_path: Path,
) -> Operator:
    """A clean environment, in a directory without a .env file, naming only what is needed."""
    key_file = token_endpoint.service_account_file(tmp_path, project=PROJECT)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "MESSAGEDB_AGENT_HOME": str(settings.local.home),
        "DATABASE_URL": database_url,
        "LOCAL_USER": f"vertex-{uuid.uuid4().hex[:8]}",
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "GOOGLE_APPLICATION_CREDENTIALS": str(key_file),
        "VERTEX_API_ENDPOINT": vertex.url,
        "MODEL_NAME": model,
    }
    return Operator(env, tmp_path)


def thread_of(done: subprocess.CompletedProcess[str]) -> str:
    found = re.search(r"thread ([0-9a-f-]{36})", done.stderr)
    assert found, done.stderr
    return found.group(1)


def tool_lines(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if line.strip().startswith("tool")]


def assert_tokens_were_granted_and_used(vertex: FakeVertex, endpoint: FakeTokenEndpoint) -> None:
    assert endpoint.refusals == []
    assert len(endpoint.grants) == 2, "one token per process"
    for grant in endpoint.grants:
        assert grant.claims["aud"] == GOOGLE_TOKEN_AUDIENCE
        assert CLOUD_PLATFORM_SCOPE in grant.claims["scope"].split()
    issued = {f"Bearer {grant.access_token}" for grant in endpoint.grants}
    assert {request.headers["Authorization"] for request in vertex.requests} == issued


def test_claude_holds_a_two_turn_tool_conversation_through_the_command(
    database_url: str,
    settings: Settings,
    vertex: FakeVertex,
    token_endpoint: FakeTokenEndpoint,
    tmp_path: Path,
) -> None:
    model = "claude-sonnet-5-5"
    shell = operator(model, database_url, settings, vertex, token_endpoint, tmp_path)
    vertex.reply(
        claude_reply(
            {"type": "text", "text": "Adding it."},
            {
                "type": "tool_use",
                "id": "toolu_01",
                "name": "add_task",
                "input": {"title": "buy milk"},
            },
            stop_reason="tool_use",
        )
    )
    vertex.reply(claude_reply({"type": "text", "text": "Added task #1 “buy milk”."}))
    vertex.reply(
        claude_reply(
            {
                "type": "tool_use",
                "id": "toolu_02",
                "name": "list_tasks",
                "input": {"status": "all"},
            },
            stop_reason="tool_use",
        )
    )
    vertex.reply(claude_reply({"type": "text", "text": "You have one task: buy milk."}))

    started = shell.run("start", "add a task to buy milk")
    thread = thread_of(started)
    continued = shell.run("continue", thread, "what are my tasks?")

    assert "assistant › Added task #1 “buy milk”." in started.stdout
    [added] = tool_lines(started.stdout)
    assert added.startswith('tool   ⚙ add_task(title="buy milk") → ')
    assert "assistant › You have one task: buy milk." in continued.stdout
    [listed] = tool_lines(continued.stdout)
    assert listed.startswith('tool   ⚙ list_tasks(status="all") → ')
    assert "buy milk" in listed
    assert_tokens_were_granted_and_used(vertex, token_endpoint)
    assert vertex.pending == 0
    assert {request.params["model"] for request in vertex.requests} == {model}
    # The second process replays the first turn: each tool_use answered by its tool_result
    # at the head of the next user turn, with what the tool really returned.
    first_turn, _, second_turn, last = (request.body["messages"] for request in vertex.requests)
    assert first_turn == [
        {"role": "user", "content": [{"type": "text", "text": "add a task to buy milk"}]}
    ]
    assert [message["role"] for message in last] == ["user", "assistant"] * 3 + ["user"]
    assert last[:4] == second_turn[:4]
    assert last[1]["content"] == [
        {"type": "text", "text": "Adding it."},
        {"type": "tool_use", "id": "toolu_01", "name": "add_task", "input": {"title": "buy milk"}},
    ]
    [added_result] = last[2]["content"]
    assert (added_result["type"], added_result["tool_use_id"]) == ("tool_result", "toolu_01")
    assert json.loads(added_result["content"])["task"]["title"] == "buy milk"
    assert last[3]["content"] == [{"type": "text", "text": "Added task #1 “buy milk”."}]
    assert last[4]["content"] == [{"type": "text", "text": "what are my tasks?"}]
    [listed_result] = last[6]["content"]
    assert listed_result["tool_use_id"] == "toolu_02"
    assert [task["title"] for task in _tasks(listed_result["content"])] == ["buy milk"]


def test_gemini_3_holds_a_two_turn_tool_conversation_through_the_command(
    database_url: str,
    settings: Settings,
    vertex: FakeVertex,
    token_endpoint: FakeTokenEndpoint,
    tmp_path: Path,
) -> None:
    model = "gemini-3.8-flash"
    shell = operator(model, database_url, settings, vertex, token_endpoint, tmp_path)
    version = "gemini-3.8-flash"
    vertex.reply(
        gemini_reply(
            {"text": "Adding it."},
            {"functionCall": {"name": "add_task", "args": {"title": "buy milk"}}},
            thoughts_tokens=64,
            model_version=version,
        )
    )
    vertex.reply(gemini_reply({"text": "Added task #1 “buy milk”."}, model_version=version))
    vertex.reply(
        gemini_reply(
            {"functionCall": {"name": "list_tasks", "args": {"status": "all"}}},
            model_version=version,
        )
    )
    vertex.reply(gemini_reply({"text": "You have one task: buy milk."}, model_version=version))

    started = shell.run("start", "add a task to buy milk")
    thread = thread_of(started)
    continued = shell.run("continue", thread, "what are my tasks?")

    assert "assistant › Added task #1 “buy milk”." in started.stdout
    [added] = tool_lines(started.stdout)
    assert added.startswith('tool   ⚙ add_task(title="buy milk") → ')
    assert "assistant › You have one task: buy milk." in continued.stdout
    [listed] = tool_lines(continued.stdout)
    assert listed.startswith('tool   ⚙ list_tasks(status="all") → ')
    assert_tokens_were_granted_and_used(vertex, token_endpoint)
    assert vertex.pending == 0
    assert {request.params["model"] for request in vertex.requests} == {model}
    # Each function call goes back in later requests with the signature Gemini 3 put on it,
    # byte for byte, and is answered by one function response in the next content.
    first_signature, second_signature = vertex.issued_signatures.values()
    contents = vertex.last.body["contents"]
    assert [content["role"] for content in contents] == ["user", "model"] * 3 + ["user"]
    assert contents[1]["parts"] == [
        {"text": "Adding it."},
        {
            "functionCall": {"name": "add_task", "args": {"title": "buy milk"}},
            "thoughtSignature": first_signature,
        },
    ]
    assert vertex.requests[1].body["contents"][1] == contents[1]
    [added_response] = contents[2]["parts"]
    assert added_response["functionResponse"]["name"] == "add_task"
    assert added_response["functionResponse"]["response"]["task"]["title"] == "buy milk"
    assert contents[4]["parts"] == [{"text": "what are my tasks?"}]
    assert contents[5]["parts"] == [
        {
            "functionCall": {"name": "list_tasks", "args": {"status": "all"}},
            "thoughtSignature": second_signature,
        }
    ]
    [listed_response] = contents[6]["parts"]
    tasks = listed_response["functionResponse"]["response"]["tasks"]
    assert [task["title"] for task in tasks] == ["buy milk"]


def _tasks(content: str) -> list[dict[str, Any]]:
    tasks = json.loads(content)["tasks"]
    assert isinstance(tasks, list)
    return tasks


# The token endpoint is as strict as Google's: a token only for a well-formed, well-signed,
# short-lived assertion of a known service account, with the scope Vertex needs.


def _assertion(key: rsa.RSAPrivateKey, claims: dict[str, Any], kid: str | None = None) -> str:
    header: dict[str, Any] = {"alg": "RS256", "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    segments = [_b64(json.dumps(part).encode()) for part in (header, claims)]
    signing_input = ".".join(segments).encode()
    signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return ".".join([*segments, _b64(signature)])


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(info: dict[str, Any], **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": info["client_email"],
        "scope": CLOUD_PLATFORM_SCOPE,
        "aud": GOOGLE_TOKEN_AUDIENCE,
        "iat": now,
        "exp": now + 3600,
    }
    return claims | changes


def _post(endpoint: FakeTokenEndpoint, form: dict[str, str]) -> httpx.Response:
    return httpx.post(endpoint.token_uri, data=form, timeout=5)


def test_google_auth_trades_a_key_file_for_a_token_the_endpoint_vouches_for(
    token_endpoint: FakeTokenEndpoint, tmp_path: Path
) -> None:
    key_file = str(token_endpoint.service_account_file(tmp_path))
    load = service_account.Credentials.from_service_account_file
    credentials = load(key_file, scopes=[CLOUD_PLATFORM_SCOPE])  # type: ignore[no-untyped-call]

    credentials.refresh(Request())

    assert token_endpoint.accepts(credentials.token)
    assert not token_endpoint.accepts("ya29.made-up")
    [grant] = token_endpoint.grants
    assert grant.claims["iss"] == credentials.service_account_email
    assert grant.claims["exp"] - grant.claims["iat"] == 3600


def test_the_token_endpoint_answers_a_good_assertion_as_google_documents(
    token_endpoint: FakeTokenEndpoint, tmp_path: Path
) -> None:
    info = json.loads(token_endpoint.service_account_file(tmp_path).read_text())
    key = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)

    answer = _post(
        token_endpoint,
        {
            "grant_type": JWT_BEARER,
            "assertion": _assertion(key, _claims(info), info["private_key_id"]),
        },
    )

    assert answer.status_code == 200
    assert set(answer.json()) == {"access_token", "expires_in", "token_type"}
    assert answer.json()["token_type"] == "Bearer"
    assert 0 < answer.json()["expires_in"] <= 3600


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("grant_type", "unsupported_grant_type"),
        ("another_key", "invalid_grant"),
        ("another_kid", "invalid_grant"),
        ("audience", "invalid_grant"),
        ("unknown_account", "invalid_grant"),
        ("over_an_hour", "invalid_grant"),
        ("expired", "invalid_grant"),
        ("no_scope", "invalid_scope"),
        ("not_a_jwt", "invalid_request"),
    ],
)
def test_the_token_endpoint_refuses_what_google_refuses(
    token_endpoint: FakeTokenEndpoint, tmp_path: Path, case: str, error: str
) -> None:
    info = json.loads(token_endpoint.service_account_file(tmp_path).read_text())
    key = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    now = int(time.time())
    claims, kid, grant_type = _claims(info), info["private_key_id"], JWT_BEARER
    if case == "grant_type":
        grant_type = "client_credentials"
    elif case == "another_key":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif case == "another_kid":
        kid = "0" * 40
    elif case == "audience":
        claims = _claims(info, aud=token_endpoint.token_uri)
    elif case == "unknown_account":
        claims = _claims(info, iss="someone@else.iam.gserviceaccount.com")
    elif case == "over_an_hour":
        claims = _claims(info, exp=now + 3601)
    elif case == "expired":
        claims = _claims(info, iat=now - 7200, exp=now - 3600)
    elif case == "no_scope":
        claims = {key_: value for key_, value in claims.items() if key_ != "scope"}
    assertion = "not.a-jwt" if case == "not_a_jwt" else _assertion(key, claims, kid)

    answer = _post(token_endpoint, {"grant_type": grant_type, "assertion": assertion})

    assert answer.status_code == 400
    assert answer.json()["error"] == error
    assert answer.json()["error_description"]
    assert token_endpoint.grants == []
