"""One deployable source folder (and zip) per function, as Cloud Functions builds them.

Each `build/<name>/` holds the function's `main.py` at the top, a copy of the library package
beside it, and a `requirements.txt` pinned from `uv.lock` (`uv export`) with every
distribution's hashes, so the buildpack's pip installs exactly the locked files (hash-checking
mode: a requirement whose download does not match is refused) and nothing else: no development
tools, no extras (`local` is the embedded server, `eval` Vertex AI's SDK), and not the CLI's
typer, pruned with what only it brings (rich among them; structlog imports rich whenever it is
installed, which costs every cold start 0.1-0.2 s). The zip has
fixed timestamps and a sorted file order, so an unchanged build is byte-for-byte the same
zip and Terraform (which names the uploaded object after its hash) deploys nothing new.

    python -m messagedb_agent.deploy.packaging build --out build [--uv PATH] [--function NAME]

Functions are discovered, not listed: every `functions/<name>/main.py`, served by the
function named `<name>` in it (the convention the local stack uses too).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import messagedb_agent

PROJECT_ROOT = Path(__file__).resolve().parents[3]
FUNCTIONS_DIR = PROJECT_ROOT / "functions"
LIBRARY_DIR = Path(messagedb_agent.__file__).resolve().parent
# Installed with the project for the command line, never imported by a function.
CLI_ONLY = ("typer",)
UV_EXPORT = [
    "export",
    "--frozen",
    "--no-dev",
    "--no-emit-project",
    *(argument for package in CLI_ONLY for argument in ("--prune", package)),
]
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can say; what matters is that it is fixed
_SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".mypy_cache")


class PackagingError(RuntimeError):
    """The packages could not be built; the message names the cause and the fix."""


@dataclass(frozen=True)
class FunctionPackage:
    name: str
    folder: Path
    archive: Path


def discover(functions_dir: Path = FUNCTIONS_DIR) -> list[str]:
    """Every folder under functions/ that has a main.py, in name order."""
    return sorted(p.parent.name for p in functions_dir.glob("*/main.py"))


def find_uv(explicit: str | None = None, project_root: Path = PROJECT_ROOT) -> str:
    """uv as given, else $UV, else the one `make setup` bootstraps, else the one on PATH."""
    for candidate in (explicit, os.environ.get("UV"), str(project_root / ".local/tools/bin/uv")):
        if candidate and Path(candidate).is_file():
            return candidate
    found = shutil.which("uv")
    if found is None:
        raise PackagingError(
            "uv is not installed, and the requirements are exported from uv.lock with it. "
            "Fix: run `make setup` (it bootstraps uv into .local/tools) or pass --uv PATH"
        )
    return found


def export_requirements(uv: str, project_root: Path = PROJECT_ROOT) -> str:
    """The locked runtime dependencies, pinned and hashed: no dev group, no extras, not the
    project, not the CLI's packages."""
    result = subprocess.run(
        [uv, *UV_EXPORT, "--project", str(project_root)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        reason = detail[-1] if detail else f"exit code {result.returncode}"
        raise PackagingError(
            f"`uv export` failed: {reason}. Fix: run `uv lock` if pyproject.toml changed"
        )
    return result.stdout


def build_function(
    name: str,
    out: Path,
    requirements: str,
    *,
    functions_dir: Path = FUNCTIONS_DIR,
    library_dir: Path = LIBRARY_DIR,
) -> FunctionPackage:
    """build/<name>/ (main.py, the library, requirements.txt) and build/<name>.zip."""
    source = functions_dir / name / "main.py"
    if not source.is_file():
        raise PackagingError(f"{source} does not exist: there is no function {name!r}")
    folder = out / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    shutil.copy2(source, folder / "main.py")
    shutil.copytree(library_dir, folder / library_dir.name, ignore=_SKIPPED)
    (folder / "requirements.txt").write_text(requirements, encoding="utf-8")
    archive = out / f"{name}.zip"
    _zip(folder, archive)
    return FunctionPackage(name, folder, archive)


def build(
    out: Path,
    *,
    uv: str | None = None,
    names: Sequence[str] = (),
    functions_dir: Path = FUNCTIONS_DIR,
    project_root: Path = PROJECT_ROOT,
) -> list[FunctionPackage]:
    available = discover(functions_dir)
    unknown = sorted(set(names) - set(available))
    if unknown:
        raise PackagingError(
            f"no function {', '.join(unknown)} under {functions_dir} "
            f"(there are: {', '.join(available)})"
        )
    requirements = export_requirements(find_uv(uv, project_root), project_root)
    out.mkdir(parents=True, exist_ok=True)
    return [
        build_function(name, out, requirements, functions_dir=functions_dir)
        for name in (names or available)
    ]


def _zip(folder: Path, archive: Path) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(folder).as_posix(), date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m messagedb_agent.deploy.packaging",
        description="Build one deployable source folder and zip per function.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build", help="build the function packages")
    build_parser.add_argument("--out", type=Path, default=Path("build"), help="output folder")
    build_parser.add_argument("--uv", help="the uv executable (default: .local/tools/bin/uv)")
    build_parser.add_argument(
        "--function", action="append", default=[], help="only this function (repeatable)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        packages = build(args.out, uv=args.uv, names=args.function)
    except PackagingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for package in packages:
        size = package.archive.stat().st_size
        print(f"» {package.name}: {package.folder}/ and {package.archive} ({size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
