"""docker-compose.yml and the Dockerfile, kept in step with the local stack they mirror.

No Docker engine runs here, so the files are parsed and compared with the code: the stack's
functions, ports and environment, the Pub/Sub names, the installer's package.
"""

from __future__ import annotations

import ast
import os
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from tests.infra.hcl import ROOT
from tests.infra.test_terraform import FRAMEWORK_ENV

from messagedb_agent.postgres import installer
from messagedb_agent.settings import Settings
from messagedb_agent.settings.serving import DEFAULT_PUBSUB_PROJECT, PubSubSettings
from messagedb_agent.stack import LocalStack, StackOptions
from messagedb_agent.stack.stack import FUNCTIONS

COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PORTS = {
    "ingest": StackOptions.ingest_port,
    "relay": StackOptions.relay_port,
    "step": StackOptions.step_port,
}


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    found: dict[str, Any] = compose["services"]
    return found


def _option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def _function_services(services: dict[str, Any]) -> dict[str, Any]:
    return {
        name: body
        for name, body in services.items()
        if body.get("command", [None])[0] == "functions-framework"
    }


def _stack_environment_names(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The variables the local stack sets for its functions (beyond the inherited ones)."""
    monkeypatch.setattr(os, "environ", {})
    stack = LocalStack(Settings(_env_file=None))  # type: ignore[call-arg]
    stack.database_url = "postgresql://postgres@localhost/message_store"
    return set(stack._function_env()) | {"PUBSUB_EMULATOR_HOST"}


def _without_interpolation(env: dict[str, str]) -> dict[str, str]:
    """Values as compose passes them with nothing exported: `${X:-default}` is the default."""
    return {k: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(v)) for k, v in env.items()}


def test_the_functions_are_the_stacks_functions(services: dict[str, Any]) -> None:
    assert set(_function_services(services)) == set(FUNCTIONS)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_each_function_is_served_as_the_stack_serves_it(
    services: dict[str, Any], name: str
) -> None:
    command = services[name]["command"]
    assert _option(command, "--target") == name
    source = _option(command, "--source")
    assert source == f"functions/{name}/main.py"
    assert (ROOT / source).is_file()
    assert int(_option(command, "--port")) == PORTS[name]
    assert _option(command, "--host") == "0.0.0.0"  # noqa: S104 (inside a container)
    assert services[name]["ports"] == [f"{PORTS[name]}:{PORTS[name]}"]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_each_function_gets_the_stacks_environment(
    services: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = services[name]["environment"]
    assert _stack_environment_names(monkeypatch) - set(env) == set()
    values = _without_interpolation(env)
    assert values["PUBSUB_EMULATOR_HOST"] == f"pubsub:{StackOptions.emulator_port}"
    assert values["PUBSUB_PROJECT"] == DEFAULT_PUBSUB_PROJECT
    assert values["PUBSUB_TOPIC"] == PubSubSettings.model_fields["pubsub_topic"].default
    assert urlsplit(values["DATABASE_URL"]).hostname == "postgres"
    settings = {k.lower(): v for k, v in values.items() if k not in FRAMEWORK_ENV}
    Settings(_env_file=None, **settings).serving_api()  # type: ignore[call-arg]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_functions_start_after_message_db_and_the_topology(
    services: dict[str, Any], name: str
) -> None:
    depends = services[name]["depends_on"]
    assert depends["messagedb-install"]["condition"] == "service_completed_successfully"
    assert depends["pubsub-topology"]["condition"] == "service_completed_successfully"


def test_message_db_is_installed_by_the_projects_installer(services: dict[str, Any]) -> None:
    assert services["postgres"]["image"] == "postgres:17"
    install = services["messagedb-install"]
    assert install["command"] == ["messagedb-agent", "db", "install"]
    assert install["depends_on"]["postgres"]["condition"] == "service_healthy"
    url = install["environment"]["DATABASE_URL"]
    assert url == services["ingest"]["environment"]["DATABASE_URL"]
    postgres = services["postgres"]["environment"]
    parts = urlsplit(url)
    assert (parts.username, parts.password) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
    )
    assert parts.path == f"/{postgres['POSTGRES_DB']}"


def test_the_emulator_listens_where_the_functions_look(services: dict[str, Any]) -> None:
    pubsub = services["pubsub"]
    assert pubsub["image"] == "gcr.io/google.com/cloudsdktool/google-cloud-cli:emulators"
    command = pubsub["command"]
    assert command[:5] == ["gcloud", "beta", "emulators", "pubsub", "start"]
    assert f"--host-port=0.0.0.0:{StackOptions.emulator_port}" in command
    assert f"--project={DEFAULT_PUBSUB_PROJECT}" in command


def test_the_topology_is_the_stacks_pushing_to_step(services: dict[str, Any]) -> None:
    topology = services["pubsub-topology"]
    script = topology["command"][-1]
    calls = [
        node
        for node in ast.walk(ast.parse(script))
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "create_topology"
    ]
    assert len(calls) == 1
    args = [ast.literal_eval(a) for a in calls[0].args]
    defaults = PubSubSettings.model_fields
    assert args == [
        f"pubsub:{StackOptions.emulator_port}",
        DEFAULT_PUBSUB_PROJECT,
        defaults["pubsub_topic"].default,
        defaults["pubsub_dead_letter_topic"].default,
        defaults["pubsub_subscription"].default,
        f"http://step:{StackOptions.step_port}/",
    ]
    assert topology["depends_on"]["pubsub"]["condition"] == "service_healthy"


def test_the_relay_is_triggered_as_cloud_scheduler_would(services: dict[str, Any]) -> None:
    script = services["relay-trigger"]["command"][-1]
    assert f'httpx.post("http://relay:{StackOptions.relay_port}/"' in script
    assert f"time.sleep({StackOptions.relay_interval:g})" in script


def test_the_image_installs_the_pinned_message_db_and_the_locked_dependencies() -> None:
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    assert f"npm pack {installer.PACKAGE}@{installer.VERSION}" in dockerfile
    assert f"MESSAGEDB_TARBALL=/opt/message-db/{installer.TARBALL_NAME}" in dockerfile
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    uv_version = re.search(r"^UV_VERSION := (\S+)$", makefile, re.MULTILINE)
    assert uv_version is not None
    assert f'"uv=={uv_version.group(1)}"' in dockerfile
    assert "uv sync --frozen --no-dev" in dockerfile
    assert re.search(r"^FROM python:3\.11\b", dockerfile, re.MULTILINE)
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".venv", ".local", "build"} <= set(ignored), "local state stays out of the image"
