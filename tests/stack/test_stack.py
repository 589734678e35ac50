"""The local stack as a developer runs it: real emulator, functions-framework processes."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from messagedb_agent.pubsub.envelope import encode_push
from messagedb_agent.settings import Settings
from messagedb_agent.stack import LocalStack, StackOptions
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.commands import start_thread

OFFLINE = {"MODEL_NAME": "offline", "GOOGLE_CLOUD_PROJECT": ""}


def _options(database_url: str, **overrides: object) -> StackOptions:
    values: dict[str, object] = {
        "ingest_port": 0,
        "relay_port": 0,
        "step_port": 0,
        "emulator_port": 0,
        "local_topic_port": 0,
        "database_url": database_url,
        "env": OFFLINE,
        "startup_timeout": 60.0,
    }
    values.update(overrides)
    return StackOptions(**values)  # type: ignore[arg-type]


def wait_for(
    stream: str, store: MessageStore, event_type: str, count: int = 1, timeout: float = 30.0
) -> list[str]:
    """The stream's event types once `count` events of `event_type` are in it (or time is up)."""
    deadline = time.monotonic() + timeout
    while True:
        types = [m.type for m in store.get_stream_messages(stream)]
        if types.count(event_type) >= count or time.monotonic() > deadline:
            return types
        time.sleep(0.1)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def emulator_stack(database_url: str, settings: Settings) -> Iterator[LocalStack]:
    # No relay trigger here: whatever advances a thread came through the emulator's push.
    with LocalStack(settings, _options(database_url, relay_interval=0)) as stack:
        yield stack


def test_the_stack_runs_the_real_emulator_and_every_function(emulator_stack: LocalStack) -> None:
    assert emulator_stack.transport == "emulator"
    assert emulator_stack.topology is not None
    assert emulator_stack.topology.push_endpoint == emulator_stack.urls["step"] + "/"
    for name in ("relay", "step"):
        assert name in emulator_stack.urls
    assert "emulator at" in emulator_stack.banner()


def test_a_push_to_the_step_function_advances_the_thread_through_the_emulator(
    emulator_stack: LocalStack, store: MessageStore
) -> None:
    thread = start_thread(
        store, owner="alice", message="add a task to buy milk", now=datetime.now(UTC)
    )
    body = encode_push(thread.notification, subscription="projects/local-project/subscriptions/s")

    response = httpx.post(emulator_stack.urls["step"] + "/", json=body, timeout=30)

    assert response.status_code == 200
    # The step asked for a tool; its follow-ups then travel step → emulator → push → step.
    types = wait_for(thread.stream_name, store, "LLMResponseReceived", count=2)
    assert types[2:] == [
        "LLMCallRequested",
        "LLMResponseReceived",
        "ToolExecutionRequested",
        "ToolExecutionCompleted",
        "LLMCallRequested",
        "LLMResponseReceived",
    ]


def test_a_thread_started_through_ingest_gets_its_reply_via_the_emulator(
    emulator_stack: LocalStack,
) -> None:
    if "ingest" not in emulator_stack.urls:
        pytest.skip("the ingest function is not in this checkout")
    token = emulator_stack.dev_token("bob")
    assert token is not None
    headers = {"Authorization": f"Bearer {token}"}
    ingest = emulator_stack.urls["ingest"]

    created = httpx.post(
        f"{ingest}/v1/threads", headers=headers, json={"message": "hello there"}, timeout=30
    )

    assert created.status_code == 201, created.text
    thread_id = created.json()["thread_id"]
    deadline = time.monotonic() + 30
    roles: list[str] = []
    while time.monotonic() < deadline:
        shown = httpx.get(f"{ingest}/v1/threads/{thread_id}", headers=headers, timeout=10)
        roles = [m["role"] for m in shown.json()["messages"]]
        if "assistant" in roles:
            break
        time.sleep(0.2)
    assert roles == ["user", "assistant"]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"[1, 2, 3]", "application/json"),
        (b"\x00not json", "application/json"),
        (b"x", "text/plain"),
    ],
    ids=["json-array", "not-json", "text"],
)
def test_a_push_the_step_function_can_never_process_is_acknowledged_by_the_running_process(
    emulator_stack: LocalStack, body: bytes, content_type: str
) -> None:
    response = httpx.post(
        emulator_stack.urls["step"] + "/",
        content=body,
        headers={"Content-Type": content_type},
        timeout=10,
    )

    assert response.status_code == 200, response.text


def _lying_post(url: str, path: str) -> tuple[bytes, float]:
    """POST a 17-byte body under a 2 MB Content-Length; what came back, and when it closed."""
    parts = httpx.URL(url)
    with socket.create_connection((parts.host, parts.port), timeout=10) as sock:
        body = b'{"message": "hi"}'
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {parts.host}\r\nContent-Type: application/json\r\n"
            "Content-Length: 2000000\r\n\r\n".encode()
            + body
        )
        started = time.monotonic()
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer, time.monotonic() - started


def test_a_lying_content_length_is_dropped_within_seconds_and_the_next_request_is_served(
    emulator_stack: LocalStack,
) -> None:
    ingest = emulator_stack.urls["ingest"]

    answer, closed_after = _lying_post(ingest, "/v1/threads")

    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert closed_after < 5.0
    token = emulator_stack.dev_token("lying-check")
    served = httpx.post(
        f"{ingest}/v1/threads",
        headers={"Authorization": f"Bearer {token}"},
        json={"title": "after a lying request"},
        timeout=5,
    )
    assert served.status_code == 201, served.text


def test_stopping_leaves_no_process_behind(database_url: str, settings: Settings) -> None:
    stack = LocalStack(settings, _options(database_url, relay_interval=0, transport="local"))
    stack.start()
    groups = [s.pid for s in stack.services if s.pid is not None]
    assert len(groups) >= 2
    assert all(_group_alive(g) for g in groups)

    stack.stop()

    assert not any(_group_alive(g) for g in groups)


def test_without_gcloud_the_built_in_topic_delivers_and_the_relay_is_triggered(
    database_url: str, settings: Settings, store: MessageStore, tmp_path: Path
) -> None:
    import io

    out = io.StringIO()
    options = _options(database_url, relay_interval=0.5, search_path=str(tmp_path))
    with LocalStack(settings, options, out=out) as stack:
        assert stack.transport == "local"
        assert "BUILT-IN topic" in out.getvalue()
        assert "BUILT-IN topic" in stack.banner()
        # Nobody posts anything: the relay trigger finds the thread, the topic pushes it.
        thread = start_thread(store, owner="carol", message="hello", now=datetime.now(UTC))
        types = wait_for(thread.stream_name, store, "LLMResponseReceived")
        assert types[-1] == "LLMResponseReceived"
        assert stack.relay_trigger is not None
        assert stack.local_topic is not None
        # The relay's run is counted once its HTTP answer is back, and the push once the step
        # has answered: either may come after the reply is already in the log.
        trigger, topic = stack.relay_trigger, stack.local_topic
        deadline = time.monotonic() + 10
        while (trigger.runs < 1 or topic.delivered < 1) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert trigger.runs >= 1, f"relay trigger failures: {trigger.failures}"
        assert stack.local_topic.delivered >= 1
        assert stack.local_topic.dead_letters == []


def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            children.append(int(entry.name))
    return children


def test_the_stack_command_stops_everything_on_sigterm(database_url: str, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import threading

    script = (
        "import sys\n"
        "from messagedb_agent.settings import Settings\n"
        "from messagedb_agent.stack import StackOptions, run\n"
        f"options = StackOptions(ingest_port=0, relay_port=0, step_port=0, local_topic_port=0,"
        f" database_url={database_url!r}, search_path={str(tmp_path)!r}, relay_interval=1)\n"
        "sys.exit(run(Settings(), options))\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **OFFLINE},
    )
    lines: list[str] = []
    up = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "Press Ctrl-C" in line:
                up.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert up.wait(60), "".join(lines)
        children = _children(process.pid)
        assert len(children) >= 2  # relay and step (and ingest when present)

        process.send_signal(signal.SIGTERM)

        assert process.wait(30) == 0
        reader.join(5)
        assert "stopped." in "".join(lines)
        assert not [c for c in children if Path(f"/proc/{c}").exists()]
    finally:
        if process.poll() is None:
            process.kill()


def test_the_stacks_functions_accept_callbacks_on_this_machine_unless_told_otherwise(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = LocalStack(settings, _options("postgresql://u@127.0.0.1:1/db"))
    stack.database_url = "postgresql://u@127.0.0.1:1/db"
    monkeypatch.delenv("CALLBACK_ALLOW_PRIVATE", raising=False)
    assert stack._function_env()["CALLBACK_ALLOW_PRIVATE"] == "true"
    monkeypatch.setenv("CALLBACK_ALLOW_PRIVATE", "false")
    assert stack._function_env()["CALLBACK_ALLOW_PRIVATE"] == "false"


def test_a_token_the_stack_printed_still_signs_in_after_it_restarts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from messagedb_agent.api.auth import Authenticator

    for name in ("JWT_HS256_SECRET", "DEV_AUTH_SECRET", "JWT_PUBLIC_KEY", "JWT_JWKS_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(messagedb_agent_home=tmp_path / "state", database_url=None)
    url = "postgresql://u@127.0.0.1:1/db"

    def started() -> tuple[LocalStack, dict[str, str]]:
        stack = LocalStack(settings, _options(url))
        stack.database_url = url
        return stack, stack._function_env()

    before, _ = started()
    token = before.dev_token("alice")
    assert token is not None
    after, env = started()
    api = Authenticator(Settings(dev_auth_secret=env["DEV_AUTH_SECRET"]).api)
    assert api.user_of(f"Bearer {token}") == "alice"
    assert (tmp_path / "state" / "dev-auth-secret").read_text().strip() == after.auth_secret
