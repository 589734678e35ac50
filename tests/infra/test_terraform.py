"""infra/ checked against the code it deploys: functions, settings, secrets, grants, connections.

`terraform validate` needs the providers, which cannot be downloaded here, so the files are
parsed (python-hcl2) and compared with what the code declares: the function folders and
their decorated targets, the settings' variables each function reads, the local stack's Pub/Sub
names, the installer's command line.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from tests.infra import functions_source
from tests.infra.hcl import INFRA, ROOT, Config, Expr, block, load, map_keys

from messagedb_agent.deploy import database_users
from messagedb_agent.deploy.packaging import discover
from messagedb_agent.settings import Settings
from messagedb_agent.settings.serving import PubSubSettings
from messagedb_agent.settings.storage import CloudSqlSettings, DatabaseSettings

MODULE_SOURCE = "./modules/function"

# Settings no function reads in Cloud, each with the reason; everything else must be set.
LOCAL_ONLY = {
    "DATABASE_URL": "Cloud connects through CLOUD_SQL_INSTANCE and the connector",
    "MESSAGEDB_AGENT_HOME": "the embedded server's data and the npm cache",
    "MESSAGEDB_TARBALL": "read by the installer only (the installer job's image sets it)",
    "MESSAGEDB_DATABASE": "the embedded server's database; Cloud uses DB_NAME",
    "LOCAL_USER": "who the CLI acts as",
    "MCP_SERVERS": "stdio subprocesses, which are not deployed with the functions",
    "PUBSUB_EMULATOR_HOST": "the local emulator",
    "LOCAL_TOPIC_URL": "the local stack's built-in topic",
    "DEV_AUTH_SECRET": "local tokens only; the API refuses it on Cloud Run",
    "ALLOW_DEV_AUTH": "lets the public development secret through; never in Cloud",
    "CALLBACK_ALLOW_PRIVATE": "lets callbacks reach private addresses over http; never in Cloud",
    "K_SERVICE": "set by Cloud Run itself",
    "OFFLINE_WORD_DELAY_MS": "paces the offline model, which no Cloud deployment answers with",
}
# Must never be set in Cloud: they open a door or point somewhere local.
NEVER_IN_CLOUD = {
    "DATABASE_URL",
    "DEV_AUTH_SECRET",
    "ALLOW_DEV_AUTH",
    "CALLBACK_ALLOW_PRIVATE",
    "PUBSUB_EMULATOR_HOST",
    "LOCAL_TOPIC_URL",
    "K_SERVICE",
}
# Read by functions-framework's gunicorn, not by the settings: threads (and processes) per
# instance, set to the function's request concurrency.
FRAMEWORK_ENV = {"THREADS", "WORKERS"}
# The platforms' APIs and keys at their real addresses: these are for proxies and local stand-ins.
PLATFORM_URLS = {
    "SLACK_API_URL",
    "TELEGRAM_API_URL",
    "GOOGLE_CHAT_API_ENDPOINT",
    "GOOGLE_CHAT_KEYS_URL",
}
# Set only when the deployment answers on Google Chat (`google_chat_audience`).
GOOGLE_CHAT = {"GOOGLE_CHAT_AUDIENCE", "GOOGLE_CHAT_CALLER"}
# Settings a function's sections have but it never uses, withheld on purpose (least privilege):
# only step's engine signs reply deliveries.
WITHHELD = {
    # ingest's stream tokens are keyed from JWT_HS256_SECRET, which Terraform gives it; their
    # own secret is only for deployments that verify bearer tokens with RS256 keys
    "ingest": {"CALLBACK_SIGNING_SECRET", "STREAM_TOKEN_SECRET", *PLATFORM_URLS},
    "relay": {
        "CALLBACK_SIGNING_SECRET",
        "SLACK_SIGNING_SECRET",
        "SLACK_BOT_TOKEN",
        "TELEGRAM_WEBHOOK_SECRET",
        "TELEGRAM_BOT_TOKEN",
        *GOOGLE_CHAT,
        *PLATFORM_URLS,
    },
    "step": {"SLACK_SIGNING_SECRET", "TELEGRAM_WEBHOOK_SECRET", *PLATFORM_URLS},
}
# Secrets whose values come from elsewhere (a chat platform's app), added by the operator.
OPERATOR_SECRETS = {
    "slack_signing_secret",
    "slack_bot_token",
    "telegram_bot_token",
    "telegram_webhook_secret",
}
# Who reads which secret (least privilege: no other function may read it).
EXPECTED_SECRETS = {
    "ingest": {
        "JWT_HS256_SECRET",
        "SLACK_SIGNING_SECRET",
        "SLACK_BOT_TOKEN",
        "TELEGRAM_WEBHOOK_SECRET",
        "TELEGRAM_BOT_TOKEN",
    },
    "relay": set(),
    "step": {"CALLBACK_SIGNING_SECRET", "SLACK_BOT_TOKEN", "TELEGRAM_BOT_TOKEN"},
}
BASE_ROLES = {
    "roles/cloudsql.client",
    "roles/cloudsql.instanceUser",
    "roles/logging.logWriter",
    "roles/cloudtrace.agent",
}
BROAD_ROLES = {"roles/owner", "roles/editor", "roles/viewer", "roles/secretmanager.secretAccessor"}


@pytest.fixture(scope="module")
def root() -> Config:
    return load(INFRA)


@pytest.fixture(scope="module")
def module(root: Config) -> Config:
    return root.module("ingest")


def _function_calls(root: Config) -> dict[str, dict[str, Any]]:
    return {n: b for n, b in root.modules.items() if b.get("source") == MODULE_SOURCE}


def _environment(root: Config, module: Config, name: str) -> set[str]:
    """Every plain environment variable the function gets: the call's and the module's own."""
    given = map_keys(root, root.modules[name]["environment"])
    function = module.resource("google_cloudfunctions2_function", "this")
    env = block(function, "service_config")["environment_variables"]
    return map_keys(module, env, inputs={"environment": given})


def _secrets(root: Config, name: str) -> dict[str, Any]:
    """The function's secrets as written (a chat platform's only once it is enabled)."""
    secret_env = root.modules[name]["secret_env"]
    assert isinstance(secret_env, Expr)
    (local,) = [ref for ref in secret_env.refs("local") if ref.endswith("_secrets")]
    secrets: dict[str, Any] = root.locals[local]
    return secrets


def _default(root: Config, variable: str) -> Any:
    return root.variables[variable].get("default")


# -- functions ---------------------------------------------------------------------------------


def test_every_function_folder_is_deployed_with_its_decorated_target() -> None:
    config = load(INFRA)
    calls = _function_calls(config)
    assert set(calls) == set(discover()), "one module call per functions/<name>/ folder"
    for source in functions_source.all_functions():
        call = calls[source.name]
        assert call["name"] == source.name
        assert call["entry_point"] == source.target == source.name
        assert call["source_archive"] == f"${{local.build_dir}}/{source.name}.zip"
        assert call["scaling"] == Expr(f'var.functions["{source.name}"]')


def test_the_module_deploys_the_given_entry_point_from_the_uploaded_zip(module: Config) -> None:
    function = module.resource("google_cloudfunctions2_function", "this")
    build = block(function, "build_config")
    assert build["entry_point"] == Expr("var.entry_point")
    assert build["runtime"] == Expr("var.runtime")
    storage = block(block(build, "source"), "storage_source")
    assert storage["object"] == Expr("google_storage_bucket_object.source.name")
    upload = module.resource("google_storage_bucket_object", "source")
    assert upload["source"] == Expr("var.source_archive")
    assert "filemd5(var.source_archive)" in upload["name"], "a new zip must be a new object"
    assert "event_trigger" not in function, "Pub/Sub reaches step by a push subscription"


def test_the_runtime_is_the_python_the_project_requires(root: Config) -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'requires-python = ">=3.11,<3.12"' in pyproject
    assert _default(root, "runtime") == "python311"


def test_cloud_event_functions_are_fed_by_a_push_subscription_with_dead_lettering(
    root: Config,
) -> None:
    subscriptions = root.of_type("google_pubsub_subscription")
    for source in functions_source.all_functions():
        if source.signature != "cloud_event":
            continue
        uri = Expr(f"module.{source.name}.uri")
        feeding = [
            s
            for s in subscriptions.values()
            if "push_config" in s and block(s, "push_config")["push_endpoint"] == uri
        ]
        assert len(feeding) == 1, f"{source.name} needs exactly one push subscription"
        subscription = feeding[0]
        oidc = block(block(subscription, "push_config"), "oidc_token")
        assert oidc["audience"] == uri
        invokers = root.modules[source.name]["invokers"]
        assert isinstance(invokers, dict)
        assert f"serviceAccount:${{{oidc['service_account_email'].text}}}" in invokers.values()
        dead_letter = block(subscription, "dead_letter_policy")
        assert dead_letter["dead_letter_topic"] == Expr("google_pubsub_topic.dead_letter.id")
        retry = block(subscription, "retry_policy")
        assert retry["minimum_backoff"] == Expr("var.retry_minimum_backoff")
        assert retry["maximum_backoff"] == Expr("var.retry_maximum_backoff")
        assert root.modules[source.name]["ingress"] == "ALLOW_INTERNAL_ONLY"


def test_http_functions_are_public_by_variable_or_called_by_cloud_scheduler(root: Config) -> None:
    jobs = root.of_type("google_cloud_scheduler_job")
    for source in functions_source.all_functions():
        if source.signature != "http":
            continue
        uri = Expr(f"module.{source.name}.uri")
        invokers = root.modules[source.name]["invokers"]
        callers = [j for j in jobs.values() if block(j, "http_target")["uri"] == uri]
        if callers:
            oidc = block(block(callers[0], "http_target"), "oidc_token")
            assert oidc["audience"] == uri
            assert invokers == {
                "scheduler": f"serviceAccount:${{{oidc['service_account_email'].text}}}"
            }, "only the scheduler's account may call a scheduled function"
            assert root.modules[source.name]["ingress"] == "ALLOW_INTERNAL_ONLY"
        else:
            assert isinstance(invokers, Expr)
            assert invokers.refs("var") == ["ingest_invokers"]
            assert _default(root, "ingest_invokers") == ["allUsers"]
            assert root.modules[source.name]["ingress"] == "ALLOW_ALL"


def test_the_relay_is_called_with_post_as_the_local_trigger_does(root: Config) -> None:
    target = block(root.resource("google_cloud_scheduler_job", "relay"), "http_target")
    assert target["http_method"] == "POST"
    scheduler_source = (ROOT / "shared/messagedb_agent/stack/scheduler.py").read_text()
    assert "client.post(" in scheduler_source


# -- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", discover())
def test_every_setting_the_function_reads_in_cloud_is_set(
    root: Config, module: Config, name: str
) -> None:
    source = functions_source.read(name)
    expected = functions_source.variables(source.sections) - set(LOCAL_ONLY) - WITHHELD[name]
    provided = _environment(root, module, name) | set(_secrets(root, name))
    assert expected - provided == set(), f"{name} is missing settings"


@pytest.mark.parametrize("name", discover())
def test_terraform_sets_only_settings_the_function_reads(
    root: Config, module: Config, name: str
) -> None:
    source = functions_source.read(name)
    known = functions_source.variables(source.sections) | FRAMEWORK_ENV
    assert _environment(root, module, name) - known == set(), "a typo, or a setting nobody reads"
    assert set(_secrets(root, name)) - known == set()


@pytest.mark.parametrize("name", discover())
def test_local_only_settings_are_never_set_in_cloud(
    root: Config, module: Config, name: str
) -> None:
    provided = _environment(root, module, name) | set(_secrets(root, name))
    assert provided & NEVER_IN_CLOUD == set()


def test_the_local_only_list_names_real_settings() -> None:
    every = {name.upper() for name in Settings.variables()}
    assert set(LOCAL_ONLY) - every == set(), "an allow-list entry for a setting that is gone"
    withheld = set().union(*WITHHELD.values())
    assert withheld - every == set()


def _literal_values(root: Config, module: Config, name: str) -> dict[str, str]:
    """The environment with Terraform's defaults filled in where a value comes from a variable."""
    values: dict[str, str] = {}
    scaling = _default(root, "functions")[name]
    names = ("engine_env", "observability_env", "cloud_sql_env", "pubsub_env", "api_env")
    maps = [root.locals[n] for n in names]
    maps.append(module.locals["instance_env"])
    for env in maps:
        for key, value in env.items():
            if key in FRAMEWORK_ENV:
                continue  # functions-framework's, not a setting
            if isinstance(value, str):
                values[key] = value
                continue
            match = re.fullmatch(r"(?:tostring\()?var\.(\w+(?:\.\w+)?)\)?", value.text)
            if match is None:
                continue  # a resource's attribute, known after apply
            path = match.group(1).split(".")
            default = scaling[path[1]] if path[0] == "scaling" else _default(root, path[0])
            if default is not None and default != "":
                values[key] = str(default)
    return values


@pytest.mark.parametrize("name", discover())
def test_terraform_defaults_are_valid_settings(root: Config, module: Config, name: str) -> None:
    values = _literal_values(root, module, name)
    values["CLOUD_SQL_INSTANCE"] = "my-project:us-central1:agent-messagedb"
    values.setdefault("DB_IAM_USER", "agent-step@my-project.iam")
    values["CLOUD_SQL_IP_TYPE"] = "PUBLIC"
    values.setdefault("JWT_HS256_SECRET", "from-secret-manager")
    values.setdefault("CALLBACK_SIGNING_SECRET", "from-secret-manager")
    try:
        settings = Settings(_env_file=None, **{key.lower(): v for key, v in values.items()})  # type: ignore[call-arg]
        if functions_source.read(name).serves_api:
            settings.serving_api()
    except ValidationError as exc:
        pytest.fail(f"{name}: Terraform's defaults are not valid settings: {exc}")
    pool = settings.database.db_pool_max_size
    assert pool == _default(root, "functions")[name]["db_pool_max_size"]


def test_cloud_sql_settings_come_from_the_instance_and_database(root: Config) -> None:
    env = root.locals["cloud_sql_env"]
    assert env["CLOUD_SQL_INSTANCE"] == Expr("google_sql_database_instance.main.connection_name")
    assert env["DB_NAME"] == Expr("google_sql_database.main.name")
    assert _default(root, "db_name") == CloudSqlSettings.model_fields["db_name"].default
    ip_type = root.locals["cloud_sql_ip_type"]
    for value in re.findall(r'"(\w+)"', ip_type.text):
        CloudSqlSettings(cloud_sql_ip_type=value)


def test_each_function_logs_in_as_its_own_service_account(module: Config) -> None:
    user = module.resource("google_sql_user", "iam")
    assert user["type"] == "CLOUD_IAM_SERVICE_ACCOUNT"
    assert user["name"] == Expr("local.db_user")
    assert module.locals["db_user"] == Expr(
        'trimsuffix(google_service_account.this.email, ".gserviceaccount.com")'
    )
    assert module.locals["instance_env"]["DB_IAM_USER"] == Expr("local.db_user")
    settings = CloudSqlSettings(
        cloud_sql_instance="p:r:i",
        db_iam_user="agent-step@my-project.iam.gserviceaccount.com",
    )
    assert settings.db_iam_user == "agent-step@my-project.iam", "the same name Terraform gives"


# -- secrets and roles -------------------------------------------------------------------------


def test_each_function_reads_exactly_its_own_secrets(root: Config) -> None:
    secrets = root.of_type("google_secret_manager_secret")
    versions = root.of_type("google_secret_manager_secret_version")
    for name in discover():
        mapping = _secrets(root, name)
        assert set(mapping) == EXPECTED_SECRETS[name]
        for value in mapping.values():
            (resource,) = re.findall(r"google_secret_manager_secret\.(\w+)\.secret_id", value.text)
            assert resource in secrets
            if resource in OPERATOR_SECRETS:
                assert resource not in versions, "the operator adds its value, not Terraform"
                continue
            assert versions[resource]["secret"] == Expr(
                f"google_secret_manager_secret.{resource}.id"
            )


def test_a_chat_platforms_secrets_are_mounted_only_once_it_is_enabled(root: Config) -> None:
    """A function cannot start on a secret without a version, and the operator adds a
    platform's values only when setting it up."""
    prefixes = root.locals["channel_secret_prefixes"]
    assert isinstance(prefixes, Expr)
    for platform in ("slack", "telegram"):
        assert root.variables[f"{platform}_enabled"]["default"] is False
        assert f'var.{platform}_enabled ? [] : ["{platform.upper()}_"]' in prefixes.text
    for name in ("ingest", "step"):
        secret_env = root.modules[name]["secret_env"]
        assert isinstance(secret_env, Expr)
        assert "local.channel_secret_prefixes" in secret_env.text
        assert "startswith(key, prefix)" in secret_env.text


def test_secrets_are_mounted_and_granted_from_the_same_map(module: Config) -> None:
    function = module.resource("google_cloudfunctions2_function", "this")
    (dynamic,) = block(function, "service_config")["dynamic"]
    mounted = dynamic["secret_environment_variables"]
    assert mounted["for_each"] == Expr("var.secret_env")
    content = block(mounted, "content")
    assert content["key"] == Expr("secret_environment_variables.key")
    assert content["secret"] == Expr("secret_environment_variables.value")
    grant = module.resource("google_secret_manager_secret_iam_member", "secret")
    assert grant["for_each"] == Expr("var.secret_env")
    assert grant["secret_id"] == Expr("each.value")
    assert grant["role"] == "roles/secretmanager.secretAccessor"
    assert grant["member"] == "serviceAccount:${google_service_account.this.email}"
    assert Expr("google_secret_manager_secret_iam_member.secret") in function["depends_on"]


def test_no_secret_is_mounted_in_plain_environment(root: Config, module: Config) -> None:
    for name in discover():
        assert set(_secrets(root, name)) & _environment(root, module, name) == set()


def test_function_accounts_hold_only_the_roles_they_need(root: Config, module: Config) -> None:
    assert set(module.locals["base_roles"]) == BASE_ROLES
    extra = {name: set(root.modules[name]["project_roles"]) for name in discover()}
    assert extra == {"ingest": set(), "relay": set(), "step": {"roles/aiplatform.user"}}
    for config in (root, module):
        for binding in config.of_type("google_project_iam_member").values():
            roles = binding.get("for_each", binding.get("role"))
            listed = set(re.findall(r'"(roles/[\w.]+)"', getattr(roles, "text", ""))) or (
                set(roles) if isinstance(roles, list) else {roles}
            )
            assert listed & BROAD_ROLES == set(), f"project-wide grant of {listed & BROAD_ROLES}"


def test_every_function_may_publish_notifications(root: Config) -> None:
    publisher = root.resource("google_pubsub_topic_iam_member", "publisher")
    assert publisher["topic"] == Expr("google_pubsub_topic.steps.name")
    assert publisher["role"] == "roles/pubsub.publisher"
    assert publisher["for_each"] == {
        name: Expr(f"module.{name}.service_account_email") for name in discover()
    }


# -- the connection budget ---------------------------------------------------------------------


def _budget(root: Config) -> tuple[int, int, int]:
    functions = _default(root, "functions")
    pooled = sum(f["max_instances"] * f["db_pool_max_size"] for f in functions.values())
    listening = functions["ingest"]["max_instances"]  # one LISTEN session per ingest instance
    headroom = _default(root, "db_connection_headroom")
    return pooled, pooled + listening + headroom, _default(root, "db_max_connections")


def test_pooled_connections_fit_under_max_connections(root: Config) -> None:
    _pooled, with_headroom, max_connections = _budget(root)
    assert with_headroom <= max_connections
    pool_limit = DatabaseSettings.model_fields["db_pool_max_size"].metadata
    assert any(getattr(m, "le", None) == 100 for m in pool_limit), "the validation mirrors this"
    for scaling in _default(root, "functions").values():
        assert _default(root, "db_pool_min_size") <= scaling["db_pool_max_size"] <= 100


def test_the_plan_fails_when_the_budget_is_exceeded(root: Config, module: Config) -> None:
    assert root.locals["pooled_connections"] == Expr(
        "sum([for f in values(var.functions) : f.max_instances * f.db_pool_max_size])"
    )
    assert root.locals["listen_connections"] == Expr("try(var.functions.ingest.max_instances, 0)")
    assert root.locals["connection_budget"] == Expr(
        "local.pooled_connections + local.listen_connections + var.db_connection_headroom"
    )
    lifecycle = block(root.resource("google_sql_database_instance", "main"), "lifecycle")
    conditions = [p["condition"] for p in lifecycle["precondition"]]
    assert Expr("local.connection_budget <= var.db_max_connections") in conditions
    flags = block(root.resource("google_sql_database_instance", "main"), "settings")
    max_connections = [f for f in flags["database_flags"] if f["name"] == "max_connections"]
    assert max_connections[0]["value"] == Expr("tostring(var.db_max_connections)")
    # The budget counts what is deployed: the same two numbers set each function's scaling.
    service = block(module.resource("google_cloudfunctions2_function", "this"), "service_config")
    assert service["max_instance_count"] == Expr("var.scaling.max_instances")
    assert module.locals["instance_env"]["DB_POOL_MAX_SIZE"] == Expr(
        "tostring(var.scaling.db_pool_max_size)"
    )


def test_functions_framework_serves_as_many_threads_as_cloud_run_sends_requests(
    module: Config,
) -> None:
    """Unset, functions-framework runs 4 threads per CPU it sees, whatever the concurrency."""
    env = module.locals["instance_env"]
    assert env["THREADS"] == Expr("tostring(var.scaling.concurrency)")
    assert env["WORKERS"] == "1", "one process, so one pool per instance"
    service = block(module.resource("google_cloudfunctions2_function", "this"), "service_config")
    assert service["max_instance_request_concurrency"] == Expr("var.scaling.concurrency")
    import functions_framework._http.gunicorn as framework

    source = Path(framework.__file__).read_text(encoding="utf-8")
    for name in FRAMEWORK_ENV:
        assert f'os.environ.get("{name}"' in source, f"functions-framework no longer reads {name}"


def _fits(functions: dict[str, dict[str, int]], headroom: int, max_connections: int) -> bool:
    """The budget precondition, evaluated as Terraform does for these values."""
    pooled = sum(f["max_instances"] * f["db_pool_max_size"] for f in functions.values())
    return pooled + headroom <= max_connections


def test_the_budget_is_checked_for_any_scaling_not_only_the_defaults(root: Config) -> None:
    """No provider can be downloaded here, so the precondition's own expressions are read and
    evaluated for the defaults and for the sizings docs/capacity.md proposes."""
    assert "var.functions" in root.locals["pooled_connections"].text
    assert not re.search(r"\b1[0-9]{2}\b", root.locals["pooled_connections"].text)
    functions = _default(root, "functions")
    assert _fits(functions, _default(root, "db_connection_headroom"), 200)
    more_steps = {**functions, "step": {**functions["step"], "max_instances": 60}}
    assert not _fits(more_steps, 20, 200), "60 step instances × 3 must not fit 200"
    assert _fits(more_steps, 20, 400)
    lifecycle = block(root.resource("google_sql_database_instance", "main"), "lifecycle")
    (budget,) = [p for p in lifecycle["precondition"] if "connection_budget" in p["condition"].text]
    assert "${local.budget_terms}" in budget["error_message"], "the message names every term"
    assert root.locals["budget_terms"].refs("var") == ["functions"]


@pytest.fixture(scope="module")
def instance_checks(root: Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A provider-free module Terraform can plan here: variables.tf, sql.tf's locals, and the
    instance's preconditions as output preconditions, with their very expressions."""
    folder = tmp_path_factory.mktemp("instance_checks")
    (folder / "variables.tf").write_text((INFRA / "variables.tf").read_text(encoding="utf-8"))
    sql = (INFRA / "sql.tf").read_text(encoding="utf-8")
    start = sql.index("\nlocals {") + 1
    outputs = [sql[start : sql.index("\n}\n", start) + 3]]
    lifecycle = block(root.resource("google_sql_database_instance", "main"), "lifecycle")
    for index, check in enumerate(lifecycle["precondition"]):
        message = check["error_message"].replace('"', '\\"')
        outputs.append(
            f'output "check_{index}" {{\n  value = true\n  precondition {{\n'
            f"    condition     = {check['condition'].text}\n"
            f'    error_message = "{message}"\n  }}\n}}\n'
        )
    (folder / "main.tf").write_text("\n".join(outputs))
    _terraform(folder, "init", "-input=false")
    return folder


def _terraform(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["terraform", f"-chdir={folder}", *args, "-no-color"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "TF_IN_AUTOMATION": "1"},
    )


def _plan(folder: Path, **values: Any) -> subprocess.CompletedProcess[str]:
    (folder / "case.tfvars.json").write_text(
        json.dumps({"project_id": "my-project-1", "image": "img", **values})
    )
    return _terraform(folder, "plan", "-input=false", "-var-file=case.tfvars.json")


def _scaled(root: Config, **changes: dict[str, Any]) -> dict[str, Any]:
    functions = _default(root, "functions")
    return {name: {**f, **changes.get(name, {})} for name, f in functions.items()}


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")
def test_terraform_evaluates_the_budget_for_the_sizings_in_the_capacity_doc(
    root: Config, instance_checks: Path
) -> None:
    """The preconditions run in Terraform itself (no provider needed to plan outputs)."""
    assert _plan(instance_checks).returncode == 0
    too_many = _scaled(root, step={"max_instances": 60})
    refused = _plan(instance_checks, functions=too_many)
    assert refused.returncode != 0
    assert "Connection budget exceeded" in refused.stderr
    assert "step 60 × 3" in " ".join(refused.stderr.split()), "the message names each term"
    assert _plan(instance_checks, functions=too_many, db_max_connections=400).returncode == 0
    # docs/capacity.md: 100 turns/s on 200 connections, 1,000 turns/s on 800
    hundred = _scaled(root, ingest={"concurrency": 80}, step={"concurrency": 40})
    assert _plan(instance_checks, functions=hundred).returncode == 0
    thousand = _scaled(
        root,
        ingest={"max_instances": 20, "concurrency": 80, "db_pool_max_size": 4},
        relay={"db_pool_max_size": 8},
        step={"max_instances": 125, "concurrency": 80, "db_pool_max_size": 2, "cpu": "2"},
    )
    assert _plan(instance_checks, functions=thousand).returncode != 0
    assert _plan(instance_checks, functions=thousand, db_max_connections=800).returncode == 0


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")
def test_terraform_refuses_pooling_without_enterprise_plus_and_too_much_concurrency(
    root: Config, instance_checks: Path
) -> None:
    pooled = _plan(instance_checks, db_managed_connection_pooling=True)
    assert pooled.returncode != 0
    assert "ENTERPRISE_PLUS" in pooled.stderr
    plus = {"db_edition": "ENTERPRISE_PLUS", "db_managed_connection_pooling": True}
    assert _plan(instance_checks, **plus).returncode == 0
    crowded = _plan(instance_checks, functions=_scaled(root, step={"concurrency": 1001}))
    assert crowded.returncode != 0
    assert "1-1000" in crowded.stderr


def test_concurrency_is_within_cloud_runs_limit(root: Config) -> None:
    for scaling in _default(root, "functions").values():
        assert 1 <= scaling["concurrency"] <= 1000
    validations = root.variables["functions"]["validation"]
    assert any("f.concurrency <= 1000" in v["condition"].text for v in validations)


def test_managed_connection_pooling_is_an_enterprise_plus_option(root: Config) -> None:
    assert _default(root, "db_managed_connection_pooling") is False
    settings = block(root.resource("google_sql_database_instance", "main"), "settings")
    (dynamic,) = settings["dynamic"]
    pooling = dynamic["connection_pool_config"]
    assert pooling["for_each"] == Expr("var.db_managed_connection_pooling ? [1] : []")
    assert block(pooling, "content")["connection_pooling_enabled"] is True
    lifecycle = block(root.resource("google_sql_database_instance", "main"), "lifecycle")
    conditions = [p["condition"] for p in lifecycle["precondition"]]
    assert (
        Expr('!var.db_managed_connection_pooling || var.db_edition == "ENTERPRISE_PLUS"')
        in conditions
    )
    # Behind the pooler no startup option is sent; the installer puts search_path on the roles.
    assert root.locals["engine_env"]["DB_SEARCH_PATH_OPTION"] == Expr(
        "tostring(!var.db_managed_connection_pooling)"
    )
    assert DatabaseSettings.model_fields["db_search_path_option"].default is True


def test_the_documented_arithmetic_matches_the_defaults(root: Config) -> None:
    pooled, with_headroom, max_connections = _budget(root)
    functions = _default(root, "functions")
    terms = " + ".join(
        f"{name} {f['max_instances']} × {f['db_pool_max_size']}" for name, f in functions.items()
    )
    for path in (INFRA / "sql.tf", INFRA / "README.md"):
        text = " ".join(path.read_text(encoding="utf-8").replace("#", " ").split())
        assert f"{terms} = {pooled} pooled connections" in text, path.name
        assert f"= {with_headroom} <= max_connections ({max_connections})" in text, path.name


# -- database, Pub/Sub, installer --------------------------------------------------------------


def test_cloud_sql_is_postgres_15_or_newer_with_backups_and_iam_auth(root: Config) -> None:
    assert re.fullmatch(r"POSTGRES_(1[5-9]|[2-9]\d)", _default(root, "db_version"))
    settings = block(root.resource("google_sql_database_instance", "main"), "settings")
    backup = block(settings, "backup_configuration")
    assert backup["enabled"] is True
    assert backup["point_in_time_recovery_enabled"] is True
    flags = {f["name"]: f["value"] for f in settings["database_flags"]}
    assert flags["cloudsql.iam_authentication"] == "on"
    network = block(settings, "ip_configuration")
    assert "authorized_networks" not in network, "only the connector may reach the instance"
    assert network["ssl_mode"] == "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"


def test_pubsub_names_match_the_code_defaults(root: Config) -> None:
    defaults = PubSubSettings.model_fields
    assert _default(root, "topic_name") == defaults["pubsub_topic"].default
    assert _default(root, "dead_letter_topic_name") == defaults["pubsub_dead_letter_topic"].default
    assert _default(root, "step_subscription_name") == defaults["pubsub_subscription"].default
    assert root.locals["pubsub_env"]["PUBSUB_TOPIC"] == Expr("google_pubsub_topic.steps.name")


def test_the_functions_know_the_subscription_that_pushes_to_step(root: Config) -> None:
    """PUBSUB_SUBSCRIPTION names the step spans' messaging.destination.subscription.name."""
    push = root.resource("google_pubsub_subscription", "step_push")
    assert push["name"] == Expr("var.step_subscription_name")
    env = root.locals["pubsub_env"]
    assert env["PUBSUB_SUBSCRIPTION"] == Expr("var.step_subscription_name")


def test_failed_notifications_are_kept_for_a_week(root: Config) -> None:
    kept = root.resource("google_pubsub_subscription", "dead_letter_kept")
    assert kept["topic"] == Expr("google_pubsub_topic.dead_letter.id")
    assert "push_config" not in kept, "a pull subscription keeps messages until read"
    assert kept["message_retention_duration"] == Expr("var.dead_letter_retention")
    assert _default(root, "dead_letter_retention") == f"{7 * 24 * 3600}s"
    assert block(kept, "expiration_policy")["ttl"] == ""
    agent = Expr("local.pubsub_service_agent")
    publisher = root.resource("google_pubsub_topic_iam_member", "dead_letter_publisher")
    assert (publisher["member"], publisher["role"]) == (agent, "roles/pubsub.publisher")
    subscriber = root.resource("google_pubsub_subscription_iam_member", "dead_letter_subscriber")
    assert (subscriber["member"], subscriber["role"]) == (agent, "roles/pubsub.subscriber")


def test_a_push_is_acknowledged_no_sooner_than_a_step_may_take(root: Config) -> None:
    push = root.resource("google_pubsub_subscription", "step_push")
    assert push["ack_deadline_seconds"] == Expr('var.functions["step"].timeout_seconds')
    assert _default(root, "functions")["step"]["timeout_seconds"] <= 600
    minimum = int(_default(root, "retry_minimum_backoff").rstrip("s"))
    maximum = int(_default(root, "retry_maximum_backoff").rstrip("s"))
    assert 0 < minimum <= maximum <= 600
    assert 5 <= _default(root, "pubsub_max_delivery_attempts") <= 100
    budget = _default(root, "step_budget_seconds") + _default(root, "llm_timeout_seconds")
    assert budget <= _default(root, "functions")["step"]["timeout_seconds"]
    lifecycle = block(push, "lifecycle")
    assert any("var.step_budget_seconds" in p["condition"].text for p in lifecycle["precondition"])


def _installer_tokens(root: Config) -> list[str]:
    command = root.locals["installer_command"].text
    pieces = re.findall(r'"([^"]*)"', command)
    return shlex.split(" ".join(p.replace("${user}", "user@p.iam") for p in pieces))


def test_the_installer_job_runs_the_projects_installer_then_the_grants(root: Config) -> None:
    tokens = _installer_tokens(root)
    assert tokens[:4] == ["messagedb-agent", "db", "install", "&&"]
    assert tokens[4:7] == ["python", "-m", "messagedb_agent.deploy.database_users"]
    args = database_users.build_parser().parse_args(
        [t.replace("${module.ingest.db_user}", "ingest@p.iam") for t in tokens[7:]]
    )
    assert args.member == ["user@p.iam"]
    assert args.schema_creator == ["ingest@p.iam"]
    command = root.locals["installer_command"].text
    for name in discover():
        assert f"module.{name}.db_user" in command, f"{name}'s database user is not granted"


def test_the_installer_job_connects_through_the_cloud_sql_socket(root: Config) -> None:
    job = root.resource("google_cloud_run_v2_job", "messagedb_install")
    task = block(block(job, "template"), "template")
    volume = block(task, "volumes")
    instances = block(volume, "cloud_sql_instance")["instances"]
    assert instances == [Expr("google_sql_database_instance.main.connection_name")]
    container = block(task, "containers")
    assert container["image"] == Expr("var.image")
    env = {e["name"]: e for e in container["env"]}
    assert env["DATABASE_URL"]["value"] == Expr("local.installer_database_url")
    url = root.locals["installer_database_url"]
    assert url.startswith("postgresql://")
    assert "host=/cloudsql/" in url
    Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]
    secret = block(block(env["PGPASSWORD"], "value_source"), "secret_key_ref")
    assert secret["secret"] == Expr("google_secret_manager_secret.db_admin_password.secret_id")
    grant = root.resource(
        "google_secret_manager_secret_iam_member", "installer_reads_admin_password"
    )
    assert grant["member"] == "serviceAccount:${google_service_account.installer.email}"
    mount = block(container, "volume_mounts")
    assert mount["mount_path"] == "/cloudsql"


# -- hygiene -----------------------------------------------------------------------------------


def test_every_variable_and_output_is_described(root: Config, module: Config) -> None:
    for config in (root, module):
        for name, variable in config.variables.items():
            assert variable.get("description"), f"variable {name} has no description"
        for name, output in config.outputs.items():
            assert output.get("description"), f"output {name} has no description"
    assert {"ingest_url", "topic", "dead_letter_topic", "sql_connection_name"} <= set(root.outputs)


def test_the_google_provider_version_is_pinned(root: Config) -> None:
    providers = root.terraform[0]["required_providers"][0]
    for name in ("google", "random"):
        assert re.fullmatch(r"\d+\.\d+\.\d+", providers[name]["version"]), name


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")
def test_terraform_fmt_is_clean() -> None:
    result = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", "-diff", str(INFRA)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout
