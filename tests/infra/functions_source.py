"""What each functions/<name>/main.py declares: its target and how it is invoked.

Read from the source (not imported), so these checks need no settings, database or network.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from pydantic_settings import BaseSettings

from messagedb_agent.api import ApiSettings
from messagedb_agent.config import Settings
from messagedb_agent.deploy.packaging import FUNCTIONS_DIR, discover
from messagedb_agent.observability import ObservabilitySettings
from messagedb_agent.postgres.cloudsql import CloudSqlSettings
from messagedb_agent.pubsub.config import PubSubSettings

# Every function builds these: the engine's, Pub/Sub's, the Cloud SQL connection's, and the
# logs' and traces' (configured once per entry point).
COMMON_SETTINGS: tuple[type[BaseSettings], ...] = (
    Settings,
    PubSubSettings,
    CloudSqlSettings,
    ObservabilitySettings,
)


@dataclass(frozen=True)
class FunctionSource:
    name: str
    target: str  # the decorated function
    signature: str  # "http" or "cloud_event"
    imports_api: bool  # whether it serves the HTTP API (and so reads ApiSettings)

    @property
    def settings_classes(self) -> tuple[type[BaseSettings], ...]:
        return (*COMMON_SETTINGS, ApiSettings) if self.imports_api else COMMON_SETTINGS


def read(name: str, functions_dir: Path = FUNCTIONS_DIR) -> FunctionSource:
    tree = ast.parse((functions_dir / name / "main.py").read_text(encoding="utf-8"))
    targets: list[tuple[str, str]] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                if (
                    isinstance(decorator, ast.Attribute)
                    and isinstance(decorator.value, ast.Name)
                    and decorator.value.id == "functions_framework"
                ):
                    targets.append((node.name, decorator.attr))
    assert len(targets) == 1, f"functions/{name}/main.py should have one decorated target"
    imports_api = any(
        isinstance(node, ast.ImportFrom) and (node.module or "").startswith("messagedb_agent.api")
        for node in ast.walk(tree)
    )
    target, signature = targets[0]
    return FunctionSource(name, target, signature, imports_api)


def all_functions() -> list[FunctionSource]:
    return [read(name) for name in discover()]
