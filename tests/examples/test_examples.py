"""Each example runs as the README shows it, against the test database and the offline model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(database_url: str, *command: str) -> str:
    """The README's command from the project root, with the test database as its settings."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "MODEL_NAME": "offline",
        "GOOGLE_CLOUD_PROJECT": "",
        "LOCAL_USER": "example-user",
    }
    done = subprocess.run(
        [sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_simple_agent_prints_the_answered_transcript(database_url: str) -> None:
    out = _run(database_url, "examples/simple_agent.py", "what is 12*(3+4)")

    assert out.startswith("thread ")
    assert 'calculate(expression="12*(3+4)' in out
    assert "12*(3+4) = 84" in out


def test_the_custom_tool_is_called_by_name_and_its_result_printed(database_url: str) -> None:
    out = _run(database_url, "examples/custom_tool.py")

    assert "you        /call set_priority task_id=1 level=high" in out
    assert 'set_priority returned {"level": "high", "set_for": "example-user", "task_id": 1}' in out


def test_the_custom_tool_s_refusal_reaches_the_answer(database_url: str) -> None:
    out = _run(database_url, "examples/custom_tool.py", "/call set_priority task_id=0")

    assert "set_priority failed: Task numbers start at 1." in out
