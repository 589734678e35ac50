"""What each functions/<name>/main.py declares: its target, how it is invoked, what it reads.

Read from the source (not imported), so these checks need no settings, database or network.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from messagedb_agent.deploy.packaging import FUNCTIONS_DIR, discover
from messagedb_agent.settings import Settings

# The sections every function's code may read: the database's (local work's too, which
# test_terraform's LOCAL_ONLY lets Cloud leave unset) and Cloud SQL's, the model's and the
# engine's, Pub/Sub's, and the logs' and traces' (configured at start). The prices are left
# out: MODEL_PRICES is optional everywhere, so Terraform need not set it.
COMMON_SECTIONS = (
    "database",
    "local",
    "cloud_sql",
    "model",
    "engine",
    "callbacks",
    "threads",
    "pubsub",
    "observability",
    "slack",
    "telegram",
    "google_chat",
)
API_SECTIONS = ("api",)
RELAY_SECTIONS = ("relay",)  # read by the function that runs the relay only


def variables(sections: tuple[str, ...]) -> set[str]:
    """The environment variables of these sections, and the shared ones every function reads."""
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        model = field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            names.add(name)  # a variable on Settings itself, shared by the sections
        elif name in sections:
            names |= set(model.model_fields)
    return {name.upper() for name in names}


@dataclass(frozen=True)
class FunctionSource:
    name: str
    target: str  # the decorated function
    signature: str  # "http" or "cloud_event"
    serves_api: bool  # whether it serves the HTTP API (and so reads the API's settings)
    runs_relay: bool = False  # whether it runs the relay (and so reads the relay's settings)

    @property
    def sections(self) -> tuple[str, ...]:
        sections = (*COMMON_SECTIONS, *API_SECTIONS) if self.serves_api else COMMON_SECTIONS
        return (*sections, *RELAY_SECTIONS) if self.runs_relay else sections


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
    serves_api = any(
        isinstance(node, ast.Attribute) and node.attr == "ingest_api" for node in ast.walk(tree)
    )
    runs_relay = any(
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "relay"
        for node in ast.walk(tree)
    )
    target, signature = targets[0]
    return FunctionSource(name, target, signature, serves_api, runs_relay)


def all_functions() -> list[FunctionSource]:
    return [read(name) for name in discover()]
