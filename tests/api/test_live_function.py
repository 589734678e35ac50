"""The deployed shape: functions-framework serving functions/ingest, fuzzed by schemathesis.

Schemathesis generates requests from the served OpenAPI document and checks that no answer
is a server error and that every answer matches the schema documented for its status.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from messagedb_agent.api import issue_dev_token
from messagedb_agent.store.stream_name import thread_stream

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SECRET = "live-function-secret-0123456789abcdef0123"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class TopicSink:
    """Stands in for the local stack's topic on loopback, so no publish leaves the machine."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                sink.bodies.append(json.loads(self.rfile.read(length)))
                payload = json.dumps({"messageIds": ["1"]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                return None

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def streams(self) -> list[str]:
        return [
            json.loads(base64.b64decode(message["data"]))["stream_name"]
            for body in self.bodies
            for message in body["messages"]
        ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def topic() -> Iterator[TopicSink]:
    sink = TopicSink()
    yield sink
    sink.close()


@pytest.fixture(scope="module")
def function_url(
    database_url: str, topic: TopicSink, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("ingest") / "function.log"
    env = {
        **{k: v for k, v in os.environ.items() if k != "K_SERVICE"},
        "DATABASE_URL": database_url,
        "JWT_HS256_SECRET": SECRET,
        "RATE_LIMIT_PER_MINUTE": "100000",
        "MAX_WAIT_SECONDS": "0.5",
        # no step function answers here, so a stream (or an AG-UI run) would wait out its
        # whole time: short, as `wait` is
        "STREAM_MAX_SECONDS": "0.5",
        "LOCAL_TOPIC_URL": topic.url,
        "PUBSUB_EMULATOR_HOST": "",
        "NO_GCE_CHECK": "True",
    }
    with log.open("wb") as output:
        server = subprocess.Popen(
            [
                str(BIN / "functions-framework"),
                "--target",
                "ingest",
                "--source",
                str(ROOT / "functions" / "ingest" / "main.py"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the function did not come up:\n{log.read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


def test_the_live_function_serves_a_conversation(function_url: str) -> None:
    headers = {"Authorization": f"Bearer {issue_dev_token('live-user', SECRET)}"}

    created = httpx.post(f"{function_url}/v1/threads", json={"message": "hi"}, headers=headers)
    thread = httpx.get(f"{function_url}/v1/threads/{created.json()['thread_id']}", headers=headers)
    refused = httpx.get(f"{function_url}/v1/threads")

    assert created.status_code == 201
    assert thread.json()["messages"][0]["text"] == "hi"
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"


def test_the_live_function_publishes_each_write_to_the_topic(
    function_url: str, topic: TopicSink
) -> None:
    pytest.importorskip("messagedb_agent.pubsub.transport", reason="no Pub/Sub publisher here")
    headers = {"Authorization": f"Bearer {issue_dev_token('live-user', SECRET)}"}

    created = httpx.post(f"{function_url}/v1/threads", json={"message": "hi"}, headers=headers)

    assert thread_stream(created.json()["thread_id"]) in topic.streams()


def _quiet_about(folder: Path, *operations: str) -> Path:
    """Schemathesis configuration that keeps warnings about `operations` out of the verdict:
    with no engine behind this function, nothing ever waits for approval, so every well-formed
    decision (and AG-UI `resume` answer) is a 404, and most generated AG-UI run inputs carry
    no user text the agent can read (a 422); schemathesis warns that it found little data the
    routes accept. Their answers are still checked for server errors and schema conformance."""
    config = folder / "schemathesis.toml"
    config.write_text(
        "".join(
            f'[[operations]]\ninclude-operation-id = "{operation}"\nwarnings = false\n\n'
            for operation in operations
        )
    )
    return config


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    function_url: str, tmp_path: Path
) -> None:
    token = issue_dev_token(f"fuzz-{uuid.uuid4().hex[:8]}", SECRET)
    result = subprocess.run(
        [
            str(BIN / "schemathesis"),
            "--config-file",
            str(_quiet_about(tmp_path, "decideApproval", "runAgUi")),
            "run",
            f"{function_url}/openapi.json",
            "--header",
            f"Authorization: Bearer {token}",
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--max-examples",
            "20",
            "--seed",
            "20260101",
            # one worker: CPython 3.11's ast module is not thread-safe (cpython#106905), and
            # schemathesis parses code in its workers
            "--workers",
            "1",
            "--no-color",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )

    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "No issues found" in result.stdout
