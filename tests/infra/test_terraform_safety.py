"""infra/ on the day things go wrong: destroy, leaked state, a wrong limit, a slow lock.

Parsed with python-hcl2 like test_terraform.py. The variables' validation rules are also run
by Terraform itself where it is installed: the variable blocks are copied into a module with
nothing else (no provider to download), and `terraform plan -var ...` must accept or refuse.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.infra.hcl import INFRA, Config, Expr, block, load

needs_terraform = pytest.mark.skipif(
    shutil.which("terraform") is None, reason="terraform is not installed"
)


@pytest.fixture(scope="module")
def root() -> Config:
    return load(INFRA)


@pytest.fixture(scope="module")
def module(root: Config) -> Config:
    return root.module("ingest")


def _attributes(value: Any) -> list[tuple[str, Any]]:
    """Every (attribute, value) of a resource body, nested blocks included."""
    found: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        for key, inner in value.items():
            found.append((key, inner))
            found.extend(_attributes(inner))
    elif isinstance(value, list):
        for inner in value:
            found.extend(_attributes(inner))
    return found


# -- destroy -----------------------------------------------------------------------------------


def test_sql_users_are_abandoned_rather_than_deleted(root: Config, module: Config) -> None:
    """Cloud SQL cannot delete a PostgreSQL user that holds granted roles or owns objects (the
    installer grants each function's user `message_store`; `postgres` owns Message DB), so a
    deleting destroy fails halfway."""
    users = {**root.of_type("google_sql_user"), **module.of_type("google_sql_user")}
    assert set(users) == {"admin", "iam"}
    for name, user in users.items():
        assert user.get("deletion_policy") == "ABANDON", name


# -- nothing secret in the state ---------------------------------------------------------------


def test_generated_secrets_are_ephemeral_and_written_only(root: Config) -> None:
    assert not root.of_type("random_password"), "a random_password resource keeps its result"
    generated = {name for (type_, name) in root.ephemeral if type_ == "random_password"}
    assert generated == {"jwt_hs256_secret", "callback_signing_secret", "db_admin"}
    versions = root.of_type("google_secret_manager_secret_version")
    assert set(versions) == {"jwt_hs256_secret", "callback_signing_secret", "db_admin_password"}
    for name, version in versions.items():
        assert "secret_data" not in version, f"{name}: secret_data is stored in the state"
        data = version["secret_data_wo"]
        assert isinstance(data, Expr)
        assert re.fullmatch(r"ephemeral\.random_password\.\w+\.result", data.text), name
        written = version["secret_data_wo_version"]
        assert isinstance(written, Expr)
        (variable,) = written.refs("var")
        assert root.variables[variable]["default"] == 1
        assert root.variables[variable]["validation"], f"{variable} is not validated"


def test_the_admin_password_and_its_secret_get_the_same_value_and_change_together(
    root: Config,
) -> None:
    user = root.resource("google_sql_user", "admin")
    secret = root.resource("google_secret_manager_secret_version", "db_admin_password")
    assert "password" not in user, "password is stored in the state; password_wo is not"
    assert user["password_wo"] == secret["secret_data_wo"]
    assert user["password_wo"] == Expr("ephemeral.random_password.db_admin.result")
    assert user["password_wo_version"] == secret["secret_data_wo_version"]


def test_no_attribute_anywhere_stores_a_secret(root: Config, module: Config) -> None:
    stored = {"password", "secret_data", "root_password"}
    for config in (root, module):
        for (type_, name), body in config.resources.items():
            for key, value in _attributes(body):
                assert key not in stored, f"{type_}.{name}.{key} is kept in the state"
                if isinstance(value, Expr) and "ephemeral." in value.text:
                    assert key.endswith("_wo"), f"{type_}.{name}.{key} reads an ephemeral value"


def test_terraform_is_new_enough_for_write_only_arguments(root: Config, module: Config) -> None:
    for config in (root, module):
        required = config.terraform[0]["required_version"]
        match = re.fullmatch(r">=\s*1\.(\d+)(?:\.\d+)?", required)
        assert match, required
        assert int(match.group(1)) >= 11, "write-only arguments need Terraform 1.11"


# -- limits ------------------------------------------------------------------------------------


def test_transaction_log_retention_is_limited_by_the_edition(root: Config) -> None:
    variable = root.variables["db_log_retention_days"]
    assert variable["default"] <= 7, "the default edition is ENTERPRISE"
    assert root.variables["db_edition"]["default"] == "ENTERPRISE"
    (rule,) = variable["validation"]
    condition = rule["condition"].text
    assert "var.db_edition" in condition
    assert re.search(r"\b35\b", condition)
    assert re.search(r"\b7\b", condition)
    backup = block(
        block(root.resource("google_sql_database_instance", "main"), "settings"),
        "backup_configuration",
    )
    assert backup["transaction_log_retention_days"] == Expr("var.db_log_retention_days")


def test_dead_letter_retention_is_documented_and_validated_up_to_31_days(root: Config) -> None:
    variable = root.variables["dead_letter_retention"]
    assert "31 days" in variable["description"]
    assert "7 days)" not in variable["description"].replace('("604800s", 7 days)', "")
    assert variable["validation"]


# -- database logs -----------------------------------------------------------------------------


def test_lock_waits_and_connections_are_logged(root: Config) -> None:
    settings = block(root.resource("google_sql_database_instance", "main"), "settings")
    flags = {f["name"]: f["value"] for f in settings["database_flags"]}
    assert flags["log_lock_waits"] == "on"
    assert flags["log_connections"] == "on"
    assert flags["log_disconnections"] == "on"
    assert flags["log_checkpoints"] == "on"
    assert flags["log_min_error_statement"] == "error"
    # never statement text with parameters or every statement: user content stays out of logs
    assert "log_statement" not in flags
    assert "log_min_duration_statement" not in flags


# -- the validation rules, run by Terraform ----------------------------------------------------


def _variable_source(name: str) -> str:
    """The source text of `variable "name" { ... }` in variables.tf (strings skipped when
    matching braces)."""
    text = (INFRA / "variables.tf").read_text(encoding="utf-8")
    start = text.index(f'variable "{name}" {{')
    depth, index, quoted = 0, start, False
    while True:
        char = text[index]
        if quoted:
            if char == "\\":
                index += 1
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[start : index + 1]
        index += 1


def _plan(
    tmp_path: Path, names: list[str], values: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    folder = tmp_path / "vars"
    folder.mkdir(exist_ok=True)
    (folder / "main.tf").write_text("\n\n".join(_variable_source(n) for n in names) + "\n")
    env = {
        **os.environ,
        "CHECKPOINT_DISABLE": "1",
        "TF_CLI_CONFIG_FILE": os.devnull,
        "TF_IN_AUTOMATION": "1",
    }
    if not (folder / ".terraform").exists():
        subprocess.run(
            ["terraform", "init", "-input=false", "-no-color", "-backend=false"],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    arguments = [f"-var={key}={value}" for key, value in values.items()]
    return subprocess.run(
        ["terraform", "plan", "-input=false", "-no-color", "-lock=false", *arguments],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@needs_terraform
@pytest.mark.parametrize(
    ("edition", "days", "accepted"),
    [
        ("ENTERPRISE", 1, True),
        ("ENTERPRISE", 7, True),
        ("ENTERPRISE", 8, False),
        ("ENTERPRISE", 35, False),
        ("ENTERPRISE_PLUS", 35, True),
        ("ENTERPRISE_PLUS", 36, False),
        ("ENTERPRISE_PLUS", 0, False),
    ],
)
def test_terraform_applies_the_editions_log_retention_limit(
    tmp_path: Path, edition: str, days: int, accepted: bool
) -> None:
    result = _plan(
        tmp_path,
        ["db_edition", "db_log_retention_days"],
        {"db_edition": edition, "db_log_retention_days": str(days)},
    )
    assert (result.returncode == 0) is accepted, result.stdout + result.stderr
    if not accepted:
        assert "db_log_retention_days must be 1-7" in result.stderr


@needs_terraform
@pytest.mark.parametrize(
    ("retention", "accepted"),
    [
        ("600s", True),
        ("604800s", True),
        ("2678400s", True),  # 31 days
        ("2678401s", False),
        ("599s", False),
        ("7d", False),
    ],
)
def test_terraform_applies_pubsubs_retention_limits(
    tmp_path: Path, retention: str, accepted: bool
) -> None:
    result = _plan(tmp_path, ["dead_letter_retention"], {"dead_letter_retention": retention})
    assert (result.returncode == 0) is accepted, result.stdout + result.stderr


@needs_terraform
@pytest.mark.parametrize("name", ["db_admin_password_version", "jwt_hs256_secret_version"])
@pytest.mark.parametrize(
    ("value", "accepted"), [("1", True), ("2", True), ("0", False), ("1.5", False)]
)
def test_secret_versions_are_whole_numbers(
    tmp_path: Path, name: str, value: str, accepted: bool
) -> None:
    result = _plan(tmp_path, [name], {name: value})
    assert (result.returncode == 0) is accepted, result.stdout + result.stderr
