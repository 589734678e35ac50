"""cloudbuild.yaml refers only to things that exist: Makefile targets, Terraform variables and
outputs, substitutions, the installer's package, the folders the steps run in."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.infra.hcl import INFRA, ROOT, load

from messagedb_agent.deploy import packaging
from messagedb_agent.postgres import installer
from messagedb_agent.settings import Settings

CLOUDBUILD = ROOT / "cloudbuild.yaml"
BUILT_IN_SUBSTITUTIONS = {"PROJECT_ID", "BUILD_ID", "PROJECT_NUMBER", "LOCATION"}


@pytest.fixture(scope="module")
def build() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CLOUDBUILD.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def steps(build: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["id"]: step for step in build["steps"]}


def _script(step: dict[str, Any]) -> str:
    return " ".join(str(a) for a in step.get("args", []))


def _makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-z][\w-]*):", text, re.MULTILINE))


def test_every_step_has_an_id_an_image_and_a_command(build: dict[str, Any]) -> None:
    ids = [step["id"] for step in build["steps"]]
    assert len(ids) == len(set(ids))
    for step in build["steps"]:
        assert step["name"], step["id"]
        assert step.get("args"), step["id"]
        for waited in step.get("waitFor", []):
            assert waited == "-" or waited in ids


def test_make_targets_exist(steps: dict[str, dict[str, Any]]) -> None:
    commands = "\n".join(str(a) for step in steps.values() for a in step["args"])
    used = set(re.findall(r"^\s*make ([a-z][\w-]*)", commands, re.MULTILINE))
    assert {"test", "package"} <= used
    targets = _makefile_targets()
    missing = used - targets
    assert not missing, f"no Makefile target {missing}"


def test_substitutions_are_defined(build: dict[str, Any]) -> None:
    text = CLOUDBUILD.read_text(encoding="utf-8")
    used = set(re.findall(r"(?<!\$)\$\{(\w+)\}", text))
    defined = set(build["substitutions"]) | BUILT_IN_SUBSTITUTIONS
    assert used - defined == set()
    assert build["options"]["dynamicSubstitutions"] is True, "substitutions refer to others"
    assert {"_REGION", "_TF_STATE_BUCKET"} <= set(build["substitutions"])


def test_the_tests_run_where_gcloud_java_and_python_3_11_are(
    steps: dict[str, dict[str, Any]],
) -> None:
    test = steps["test"]
    assert test["name"] == "gcr.io/google.com/cloudsdktool/google-cloud-cli:emulators"
    assert "make test" in _script(test)
    order = list(steps)
    assert order.index("message-db-tarball") < order.index("test")


def test_message_db_is_fetched_into_the_installers_cache(steps: dict[str, dict[str, Any]]) -> None:
    script = _script(steps["message-db-tarball"])
    assert f"npm pack {installer.PACKAGE}@{installer.VERSION}" in script
    cache = Settings(_env_file=None).local.messagedb_agent_home / "cache"  # type: ignore[call-arg]
    assert f"--pack-destination {cache.as_posix()}" in script


def test_terraform_runs_in_infra_with_variables_it_declares(
    steps: dict[str, dict[str, Any]],
) -> None:
    config = load(INFRA)
    for step_id in ("terraform-plan", "terraform-apply"):
        assert (ROOT / steps[step_id]["dir"]) == INFRA
    for variable in re.findall(r'-var="(\w+)=', _script(steps["terraform-plan"])):
        assert variable in config.variables
    for output in re.findall(r"terraform output -raw (\w+)", _script(steps["terraform-apply"])):
        assert output in config.outputs
    assert set(steps["terraform-plan"]["waitFor"]) == {"test", "package", "image-push"}


def test_terraform_uploads_what_make_package_builds(steps: dict[str, dict[str, Any]]) -> None:
    config = load(INFRA)
    default_out = packaging.build_parser().parse_args(["build"]).out
    build_dir = Path(steps["terraform-plan"]["dir"]) / ".." / default_out
    assert config.locals["build_dir"].text == 'coalesce(var.build_dir, "${path.module}/../build")'
    assert (ROOT / build_dir).resolve() == (ROOT / "build").resolve()
    for name in packaging.discover():
        assert config.modules[name]["source_archive"] == f"${{local.build_dir}}/{name}.zip"


def test_the_installer_job_runs_after_the_apply_and_the_api_is_probed(
    steps: dict[str, dict[str, Any]],
) -> None:
    order = list(steps)
    assert order.index("terraform-apply") < order.index("install-message-db")
    assert "gcloud run jobs execute" in _script(steps["install-message-db"])
    assert "--wait" in _script(steps["install-message-db"])
    assert "/healthz" in _script(steps["smoke-test"])
    image = steps["image"]["args"]
    assert image[:3] == ["build", "-t", "${_IMAGE}"]
    assert image[-1] == "."
    assert (ROOT / "Dockerfile").is_file()
