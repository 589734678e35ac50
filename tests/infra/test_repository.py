"""The repository's own metadata: its license, and the pre-commit hooks that run CI's checks."""

from __future__ import annotations

import re
import shlex
import subprocess
import tomllib
from typing import Any

import yaml
from tests.infra.hcl import ROOT

VENV_BIN = ".venv/bin/"


def _project() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        project: dict[str, Any] = tomllib.load(handle)["project"]
    return project


def test_the_license_is_an_spdx_expression_matching_the_license_file() -> None:
    license_ = _project()["license"]
    assert isinstance(license_, str), "PEP 639: `license` is an SPDX expression, not a table"
    assert license_ == "MIT"
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge" in text
    assert re.search(r"Copyright \(c\) \d{4} ", text)


def _hooks() -> dict[str, dict[str, Any]]:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    return {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}


def _make_recipe(target: str) -> list[list[str]]:
    """The commands of a Makefile target, `$(BIN)/` read as the virtualenv's bin folder."""
    lines = (ROOT / "Makefile").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    commands = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        command = line.strip().lstrip("@").replace("$(BIN)/", VENV_BIN)
        commands.append(shlex.split(command))
    return commands


def test_pre_commit_runs_the_lint_and_type_checks_ci_runs_with_the_same_tools() -> None:
    hooks = _hooks()
    assert set(hooks) == {"ruff", "ruff-format", "mypy"}
    for hook in hooks.values():
        assert hook["language"] == "system"
        assert hook["entry"].startswith(VENV_BIN), "the locked tools, not a second copy"
    lint = _make_recipe("lint")
    # ruff check / ruff format: make passes `.` (the hook the staged files), and formats in
    # check mode (the hook formats, and pre-commit fails the commit on any change it made)
    assert shlex.split(hooks["ruff"]["entry"])[:3] == [*lint[0][:2], "--force-exclude"]
    assert lint[0][:2] == [f"{VENV_BIN}ruff", "check"]
    assert shlex.split(hooks["ruff-format"]["entry"])[:3] == [*lint[1][:2], "--force-exclude"]
    assert lint[1][:2] == [f"{VENV_BIN}ruff", "format"]
    assert shlex.split(hooks["mypy"]["entry"]) == _make_recipe("typecheck")[0]
    assert hooks["mypy"]["pass_filenames"] is False, "mypy checks the packages pyproject names"


def test_the_pre_commit_config_is_valid() -> None:
    result = subprocess.run(
        [str(ROOT / VENV_BIN / "pre-commit"), "validate-config", ".pre-commit-config.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
