"""`--help` shows flags without a value placeholder and arguments in capitals."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from messagedb_agent.cli import app

runner = CliRunner()

COMMANDS = [
    [],
    ["start"],
    ["continue"],
    ["show"],
    ["replay"],
    ["list"],
    ["fork"],
    ["demo"],
    ["stack"],
    ["token"],
    ["mcp"],
    ["eval"],
    ["db"],
    ["db", "install"],
    ["models"],
    ["models", "check"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "root")
def test_help_shows_no_bool_placeholder_and_no_braced_arguments(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    assert "{" not in result.output.split("Usage:")[1].splitlines()[0]


def test_usage_lines_name_arguments_as_the_help_text_does() -> None:
    output = runner.invoke(app, ["continue", "--help"], terminal_width=100).output
    assert "continue [OPTIONS] THREAD MESSAGE" in output
    models = runner.invoke(app, ["models", "check", "--help"], terminal_width=100).output
    assert "check [OPTIONS] [MODELS]..." in models


def test_options_that_take_a_value_still_show_its_type() -> None:
    output = runner.invoke(app, ["start", "--help"], terminal_width=100).output
    assert "--title" in output
    assert "<str>" in output
