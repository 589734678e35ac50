"""The local stack behaves like the platform it emulates when one of its parts dies or it is
started again at once: parts come back by themselves, ports are free again immediately."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from messagedb_agent.api.auth import issue_dev_token
from messagedb_agent.postgres.installer import fetch_tarball
from messagedb_agent.settings import Settings
from messagedb_agent.stack import LocalStack, StackOptions
from messagedb_agent.stack.processes import free_port, http_answers

OFFLINE = {"MODEL_NAME": "offline", "GOOGLE_CLOUD_PROJECT": ""}
SECRET = "stack-test-secret-0123456789abcdef"


def converse(ingest: str, token: str, message: str = "hello there", timeout: float = 45.0) -> None:
    """Start a thread through the ingest API and wait for the assistant's reply."""
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + timeout
    while True:  # the API answers 503 until its pool has reconnected
        created = httpx.post(
            f"{ingest}/v1/threads", headers=headers, json={"message": message}, timeout=30
        )
        if created.status_code == 201 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert created.status_code == 201, created.text
    thread_id = created.json()["thread_id"]
    roles: list[str] = []
    while time.monotonic() < deadline:
        shown = httpx.get(f"{ingest}/v1/threads/{thread_id}", headers=headers, timeout=10)
        if shown.status_code == 200:
            roles = [m["role"] for m in shown.json()["messages"]]
            if "assistant" in roles:
                return
        time.sleep(0.2)
    raise AssertionError(f"no reply within {timeout:.0f}s: {roles}")


class Output:
    """A child process's output, read as it comes, with a way to wait for a line."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._process = process
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, text: str, timeout: float = 60.0, after: int = 0) -> str:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [line for line in self.lines[after:] if text in line]
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                if left <= 0 or self._process.poll() is not None:
                    raise AssertionError(f"{text!r} never came:\n" + "\n".join(self.lines))
                self._changed.wait(left)


def _child_serving(parent: int, target: str) -> int:
    """The pid of `parent`'s child running `functions-framework --target <target>`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if (
            ppid == parent
            and b"--target" in argv
            and argv[argv.index(b"--target") + 1] == target.encode()
        ):
            return int(entry.name)
    raise AssertionError(f"no child of {parent} serves {target}")


def test_the_stack_command_takes_its_ports_and_brings_back_a_killed_step_function(
    database_url: str,
) -> None:
    command = [
        os.path.join(os.path.dirname(sys.executable), "messagedb-agent"),
        "stack",
        "--database-url",
        database_url,
        "--relay-interval",
        "1",
        *("--ingest-port", "0", "--relay-port", "0", "--step-port", "0"),
        *("--emulator-port", "0", "--topic-port", "0"),
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **OFFLINE, "DEV_AUTH_SECRET": SECRET},
    )
    output = Output(process)
    try:
        output.wait_for("Press Ctrl-C", timeout=90)
        urls = {
            name: output.wait_for(f"  {name} ").split()[-1] for name in ("ingest", "relay", "step")
        }
        ports = {int(url.rsplit(":", 1)[1]) for url in urls.values()}
        assert len(ports) == 3  # each a port of its own
        assert 0 not in ports  # and a real one, picked free
        assert all(http_answers(url + "/") for url in urls.values())
        step = _child_serving(process.pid, "step")

        os.kill(step, signal.SIGKILL)  # the step function's process, not the stack

        seen = len(output.lines)
        output.wait_for("the step function stopped unexpectedly", timeout=10, after=seen)
        output.wait_for("the step function is back", timeout=60, after=seen)
        assert process.poll() is None  # the stack itself never stopped
        assert _child_serving(process.pid, "step") != step
        token = issue_dev_token("restart-check", SECRET, 600)
        converse(urls["ingest"], token)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(60) == 0, "\n".join(output.lines)
        finally:
            if process.poll() is None:
                process.kill()


def test_the_stack_starts_again_at_once_on_the_ports_it_just_stopped_using(
    database_url: str, settings: Settings
) -> None:
    ports = {
        name: free_port()
        for name in ("ingest_port", "relay_port", "step_port", "emulator_port", "local_topic_port")
    }
    options = StackOptions(
        **ports, database_url=database_url, relay_interval=0, env=OFFLINE, startup_timeout=60
    )
    with LocalStack(settings, options, out=io.StringIO()) as first:
        assert first.transport == "emulator"
        for url in first.urls.values():  # the server closes first: its side waits in TIME_WAIT
            httpx.get(url + "/", headers={"Connection": "close"}, timeout=10)

    started = time.monotonic()
    with LocalStack(settings, options, out=io.StringIO()) as again:
        assert again.urls == first.urls
        assert again.emulator_host == first.emulator_host
        took = time.monotonic() - started
    assert took < 30


@pytest.fixture
def own_home() -> Iterator[Path]:
    """A home of its own for an embedded PostgreSQL the test may kill (never the session's).

    Under /tmp and readable by all: as root the server runs as its own user, which must reach it.
    """
    home = Path(tempfile.mkdtemp(prefix="stack-db-", dir="/tmp"))
    home.chmod(0o755)
    try:
        yield home
    finally:
        from messagedb_agent.postgres import embedded

        embedded.stop(home)
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.usefixtures("database_url")  # the session's server first: it owns the runtime folder
def test_the_stack_restarts_its_embedded_database_when_it_dies(
    own_home: Path, settings: Settings
) -> None:
    tarball = fetch_tarball(settings.local.home / "cache", settings.local.messagedb_tarball)
    settings = Settings(messagedb_agent_home=own_home, database_url=None, messagedb_tarball=tarball)
    out = io.StringIO()
    options = StackOptions(
        ingest_port=0,
        relay_port=0,
        step_port=0,
        local_topic_port=0,
        transport="local",
        relay_interval=0.5,
        env=OFFLINE,
        startup_timeout=60,
    )
    with LocalStack(settings, options, out=out) as stack:
        pid_file = own_home / "pgdata" / "postmaster.pid"
        postmaster = int(pid_file.read_text().split("\n", 1)[0])

        os.kill(postmaster, signal.SIGKILL)

        deadline = time.monotonic() + 60
        while "PostgreSQL is back" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "PostgreSQL stopped unexpectedly" in out.getvalue(), out.getvalue()
        assert "PostgreSQL is back" in out.getvalue(), out.getvalue()
        assert int(pid_file.read_text().split("\n", 1)[0]) != postmaster
        token = stack.dev_token("db-restart-check")
        assert token is not None
        converse(stack.urls["ingest"], token)
