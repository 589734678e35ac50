"""One settings surface: flat variables in the environment, frozen sections in code."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError
from tests.imports import loaded_by

from messagedb_agent.llm.catalogue import lookup
from messagedb_agent.settings import Settings
from messagedb_agent.settings.agent import DEFAULT_MODEL
from messagedb_agent.settings.serving import DEFAULT_PUBSUB_PROJECT


def _sections() -> dict[str, type[BaseModel]]:
    return {
        name: field.annotation
        for name, field in Settings.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
    }


def test_every_variable_is_declared_once_and_documented() -> None:
    declared = [name for name in Settings.model_fields if name not in _sections()]
    for section in _sections().values():
        declared += list(section.model_fields)
        for name, field in section.model_fields.items():
            assert field.description, f"{name.upper()} has no description"
    assert len(declared) == len(set(declared)) == len(Settings.variables())
    for name in Settings.model_fields.keys() - _sections().keys():
        assert Settings.model_fields[name].description, f"{name.upper()} has no description"


def test_variables_are_read_flat_from_the_environment_and_the_dotenv_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("PUBSUB_TOPIC=from-file\nLOG_LEVEL=DEBUG\nNOT_OURS=1\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("pubsub_topic", "from-env")
    monkeypatch.setenv("DB_POOL_MAX_SIZE", "7")

    settings = Settings()

    assert settings.pubsub.pubsub_topic == "from-env"
    assert settings.observability.log_level == "DEBUG"
    assert settings.database.db_pool_max_size == 7
    assert Settings(_env_file=None).observability.log_level == "INFO"  # type: ignore[call-arg]
    assert Settings(pubsub_topic="given").pubsub.pubsub_topic == "given"


def test_sections_are_frozen_and_replace_validates_again() -> None:
    settings = Settings.model_validate({"max_message_length": 10})
    with pytest.raises(ValidationError):
        settings.threads.max_message_length = 11  # type: ignore[misc]
    assert settings.replace(max_message_length=12).threads.max_message_length == 12
    with pytest.raises(ValidationError, match="max_message_length"):
        settings.replace(max_message_length=0)


def test_shared_variables_decide_the_derived_values() -> None:
    local = Settings.model_validate({})
    assert (local.pubsub_project, local.effective_model, local.json_logs) == (
        DEFAULT_PUBSUB_PROJECT,
        "offline",
        False,
    )
    cloud = Settings.model_validate({"google_cloud_project": "p", "k_service": "step"})
    assert (cloud.pubsub_project, cloud.effective_model, cloud.json_logs) == (
        "p",
        DEFAULT_MODEL,
        True,
    )
    assert cloud.replace(pubsub_project="q", log_format="console").pubsub_project == "q"
    assert not cloud.replace(log_format="console").json_logs


def test_only_a_process_serving_the_api_refuses_the_public_secret_on_cloud_run() -> None:
    on_cloud_run = Settings.model_validate({"k_service": "step"})
    with pytest.raises(ValidationError, match="no JWT key is configured on Cloud Run"):
        on_cloud_run.serving_api()
    assert on_cloud_run.replace(jwt_hs256_secret="s").serving_api()
    assert Settings.model_validate({}).serving_api()


def test_importing_the_settings_loads_no_driver_sdk_or_tools() -> None:
    modules = loaded_by(
        "messagedb_agent.settings", "messagedb_agent", "psycopg", "google.cloud.", "mcp"
    )
    assert "messagedb_agent.settings" in modules
    assert all(m == "messagedb_agent" or m.startswith("messagedb_agent.settings") for m in modules)


def test_the_default_model_stays_available_six_months_and_is_called_globally() -> None:
    info = lookup(DEFAULT_MODEL)
    assert info is not None
    assert info.provider == "gemini"
    assert info.released is not None
    assert info.retires is not None
    assert info.retires >= date(2027, 5, 30)  # six months after 2026-11-30
    assert not info.retired(date(2027, 5, 30))
    assert info.replacement is None
    assert Settings.model_validate({}).model.google_cloud_location == "global"


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            "gemini-2.5-flash",
            "MODEL_NAME=gemini-2.5-flash was retired on 2026-10-20; use gemini-3.8-flash instead",
        ),
        ("gemini-2.5-flash-lite-001", "was retired on 2026-10-20; use gemini-3.5-flash-lite"),
        ("gemini-2.0-flash", "was retired on 2026-06-01; use gemini-3.1-flash-lite instead"),
        ("claude-3-5-haiku@20241022", "was retired on 2026-07-05; use claude-haiku-4-5 instead"),
    ],
)
def test_a_retired_model_is_refused_at_start_with_its_replacement(model: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings.model_validate({"model_name": model})


@pytest.mark.parametrize(
    "model", ["gemini-3.8-flash", "claude-sonnet-5-5@20260928", "gemini-9-ultra", "offline", ""]
)
def test_current_and_unknown_models_are_accepted(model: str) -> None:
    assert Settings.model_validate({"model_name": model}).model.model_name == model
