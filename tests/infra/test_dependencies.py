"""pyproject.toml declares what the code imports, and only that.

Every module the library (`shared/messagedb_agent`) and the deployed entry points
(`functions/*/main.py`) import from outside the standard library must come from a distribution
pyproject.toml names, as a runtime dependency or in an extra; a transitive dependency that
happens to be installed is not enough, since any release of the package that brings it may
drop it. And every runtime dependency and extra must be imported somewhere, or it is weight in
every function's build for nothing.

Imports are read from the source (`import`, `from ... import`, and `importlib.import_module`
of a literal or a module-level constant), then located in the installed distributions' file
lists, so namespace packages (`google.*`, `opentelemetry.*`) resolve to the distribution that
really ships the module.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
from tests.infra.hcl import ROOT

LIBRARY = ROOT / "shared" / "messagedb_agent"
FUNCTIONS = ROOT / "functions"
OWN = "messagedb_agent"
# The standard library's, plus typeshed's `_typeshed` (stubs of the standard library that exist
# for type checkers only; imported under TYPE_CHECKING).
STDLIB = sys.stdlib_module_names | {"_typeshed"}


def _normalise(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, requirement
    return _normalise(match.group(1))


def _pyproject() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)["project"]  # type: ignore[no-any-return]


def runtime_dependencies() -> set[str]:
    dependencies = _pyproject()["dependencies"]
    assert isinstance(dependencies, list)
    return {_requirement_name(r) for r in dependencies}


def extras() -> dict[str, set[str]]:
    optional = _pyproject().get("optional-dependencies", {})
    assert isinstance(optional, dict)
    return {extra: {_requirement_name(r) for r in reqs} for extra, reqs in optional.items()}


def sources() -> Iterator[Path]:
    yield from sorted(p for p in LIBRARY.rglob("*.py") if "__pycache__" not in p.parts)
    yield from sorted(FUNCTIONS.glob("*/main.py"))


def imported_modules(path: Path) -> set[str]:
    """Absolute module names `path` imports, including `importlib.import_module("...")`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from google import genai` imports the module google.genai, not `google`
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                modules.add(name if _is_module(name) else node.module)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
        ):
            argument = node.args[0]
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                modules.add(argument.value)
            elif isinstance(argument, ast.Name) and argument.id in constants:
                modules.add(constants[argument.id])
    return {m for m in modules if m.split(".")[0] not in STDLIB and m.split(".")[0] != OWN}


@cache
def _files_index() -> dict[str, set[str]]:
    """Every installed file (as a module-ish path) and the distributions that ship it."""
    index: dict[str, set[str]] = {}
    for dist in importlib.metadata.distributions():
        name = _normalise(dist.metadata["Name"])
        for file in dist.files or ():
            index.setdefault(file.as_posix(), set()).add(name)
    return index


@cache
def _folders() -> frozenset[str]:
    """Every folder an installed distribution puts a file in (namespace packages included)."""
    return frozenset(
        "/".join(parts[:n])
        for file in _files_index()
        for parts in [file.split("/")]
        for n in range(1, len(parts))
    )


def _is_module(name: str) -> bool:
    path = name.replace(".", "/")
    return f"{path}.py" in _files_index() or path in _folders()


@cache
def distribution_of(module: str) -> str | None:
    """The distribution that ships `module` (or the nearest parent that one distribution
    ships alone: a namespace package's own modules come from one distribution each)."""
    index = _files_index()
    parts = module.split(".")
    for length in range(len(parts), 0, -1):
        path = "/".join(parts[:length])
        owners: set[str] = set()
        for candidate in (f"{path}/__init__.py", f"{path}.py"):
            owners |= index.get(candidate, set())
        if not owners and path in _folders():  # a namespace package: whoever ships its files
            prefix = f"{path}/"
            for file, names in index.items():
                if file.startswith(prefix) and file.endswith((".py", ".so", ".pyi")):
                    owners |= names
        if len(owners) == 1:
            return next(iter(owners))
        if owners and length == len(parts):
            return None  # several distributions claim the very module: ambiguous
    return None


@cache
def usage() -> dict[str, set[str]]:
    """Third-party module => the files (relative to the project) importing it."""
    found: dict[str, set[str]] = {}
    for path in sources():
        for module in imported_modules(path):
            found.setdefault(module, set()).add(path.relative_to(ROOT).as_posix())
    return found


def test_the_scan_sees_the_imports_it_must() -> None:
    modules = usage()
    # a plain import, a lazy one inside a function, and one through importlib
    assert "psycopg" in modules
    assert "google.genai" in modules
    assert "google.cloud.sql.connector" in modules
    assert "opentelemetry.exporter.cloud_trace" in modules
    assert "functions_framework" in modules  # from functions/*/main.py


def test_every_imported_package_is_a_declared_dependency() -> None:
    declared = runtime_dependencies() | set().union(*extras().values())
    undeclared: dict[str, set[str]] = {}
    unknown: dict[str, set[str]] = {}
    for module, files in sorted(usage().items()):
        dist = distribution_of(module)
        if dist is None:
            unknown[module] = files
        elif dist not in declared:
            undeclared.setdefault(dist, set()).update(files)
    assert not unknown, f"modules no installed distribution ships: {unknown}"
    assert not undeclared, (
        "imported but not declared in pyproject.toml (add them, pinned to uv.lock's version): "
        + "; ".join(f"{d} (by {', '.join(sorted(f))})" for d, f in sorted(undeclared.items()))
    )


@pytest.mark.parametrize("group", ["dependencies", *sorted(extras())])
def test_every_declared_dependency_is_imported(group: str) -> None:
    declared = runtime_dependencies() if group == "dependencies" else extras()[group]
    imported = {distribution_of(module) for module in usage()}
    unused = sorted(declared - imported)
    assert not unused, f"declared in {group} but never imported: {unused}"


def test_dependencies_are_pinned_exactly() -> None:
    optional = _pyproject().get("optional-dependencies", {})
    assert isinstance(optional, dict)
    everything = [*_pyproject()["dependencies"], *(r for v in optional.values() for r in v)]  # type: ignore[misc]
    loose = [r for r in everything if "==" not in r]
    assert not loose, f"pin these (uv.lock has the versions): {loose}"


def test_the_cli_is_the_only_user_of_typer() -> None:
    """The functions' builds leave typer (and rich, which structlog imports whenever it is
    installed) out; that holds only while nothing they load imports it."""
    users = {f for m, files in usage().items() if m.split(".")[0] == "typer" for f in files}
    assert users, "the scan should see the CLI's typer imports"
    assert all(f.startswith("shared/messagedb_agent/cli/") for f in users), sorted(users)
    rich = {f for m, files in usage().items() if m.split(".")[0] == "rich" for f in files}
    assert not rich, f"rich is imported directly by {sorted(rich)}"
