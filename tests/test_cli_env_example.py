"""`.env.example` and the README's Configuration table agree with the settings."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from pydantic import Field, SecretStr

from messagedb_agent.cli.env_example import default_text, env_example
from messagedb_agent.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
REGENERATE = "python -m messagedb_agent.cli.env_example > .env.example"


def test_the_committed_env_example_is_the_generated_one() -> None:
    committed = (ROOT / ".env.example").read_text(encoding="utf-8")
    assert committed == env_example(), f".env.example is out of date: run `{REGENERATE}`"


def test_every_variable_is_listed_once_commented_out() -> None:
    text = env_example()
    listed = re.findall(r"^# ([A-Z][A-Z0-9_]*)=", text, re.MULTILINE)
    assert sorted(listed) == sorted(name.upper() for name in Settings.variables())
    assert not [line for line in text.splitlines() if line and not line.startswith("#")]


def test_each_line_shows_the_default_under_the_description() -> None:
    lines = env_example().splitlines()
    at = lines.index("# MAX_ITERATIONS=10")
    assert lines[at - 1] == "# Model calls per user turn."
    assert "# LLM_LEASE_SECONDS=120" in lines
    assert "# CALLBACK_ALLOW_PRIVATE=false" in lines
    assert "# MESSAGEDB_AGENT_HOME=.local" in lines
    assert "# MODEL_PRICES={}" in lines
    assert "# DEV_AUTH_SECRET=" in lines  # a built-in secret is never suggested
    assert "# DATABASE_URL=" in lines
    assert max(len(line) for line in lines) <= 100


def test_defaults_are_written_as_the_environment_reads_them() -> None:
    assert default_text(Field(default=None)) == ""
    assert default_text(Field(default=SecretStr("s"))) == ""
    assert default_text(Field(default=True)) == "true"
    assert default_text(Field(default=2.5)) == "2.5"
    assert default_text(Field(default=Path(".local"))) == ".local"
    assert default_text(Field(default_factory=list)) == "[]"


def test_the_module_prints_it() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "messagedb_agent.cli.env_example"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert printed.stdout == env_example()


def _table_rows() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| `")]


def test_every_row_of_the_readme_table_names_real_variables() -> None:
    names = Settings.variables()
    for row in _table_rows():
        named = re.findall(r"`([A-Z][A-Z0-9_]*)`", row.split("|")[1])
        assert named, row
        unknown = [n for n in named if n.lower() not in names]
        assert not unknown, f"the Configuration table names {unknown}, which no setting declares"


def test_the_readme_table_names_every_variable() -> None:
    named = {
        name.lower()
        for row in _table_rows()
        for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", row.split("|")[1])
    }
    missing = sorted(name.upper() for name in Settings.variables() - named)
    assert not missing, f"README.md's Configuration table leaves out {missing}"
