"""The HTTP example against the ingest and step functions under functions-framework."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from messagedb_agent.settings import Settings
from messagedb_agent.stack import LocalStack, StackOptions

ROOT = Path(__file__).resolve().parents[2]
SECRET = "example-callback-secret-0123456789"


@pytest.fixture(scope="module")
def stack(database_url: str, settings: Settings) -> Iterator[LocalStack]:
    """Ingest and step on free ports, the built-in topic between them, no relay runs."""
    options = StackOptions.on_free_ports(
        transport="local",
        relay_interval=0,
        database_url=database_url,
        env={
            "MODEL_NAME": "offline",
            "GOOGLE_CLOUD_PROJECT": "",
            "CALLBACK_SIGNING_SECRET": SECRET,
            "CALLBACK_ALLOW_PRIVATE": "true",
        },
        startup_timeout=60.0,
    )
    running = LocalStack(settings, options, out=io.StringIO()).start()
    try:
        yield running
    finally:
        running.stop()


def _run(stack: LocalStack, secret: str) -> subprocess.CompletedProcess[str]:
    token = stack.dev_token("example-user")
    assert token is not None
    env = {**os.environ, "CALLBACK_SIGNING_SECRET": secret}
    command = ["examples/http_client.py", stack.urls["ingest"], token]
    return subprocess.run(
        [sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_http_client_talks_to_the_api_and_verifies_the_callback(stack: LocalStack) -> None:
    done = _run(stack, SECRET)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "reply     (Offline stand-in model" in done.stdout
    assert "\n          12*(3+4) = 84\n" in done.stdout
    assert "  user      What is 12*(3+4)?" in done.stdout
    assert "callback  verified, thread " in done.stdout
    assert done.stdout.endswith("\n          12*(3+4) = 84\n")


def test_a_callback_signed_with_another_secret_is_refused(stack: LocalStack) -> None:
    done = _run(stack, "not-the-functions-secret-0123456789")

    assert done.returncode == 1
    assert "signature does NOT verify" in done.stdout
