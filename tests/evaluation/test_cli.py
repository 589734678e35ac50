"""`messagedb-agent eval`, end to end through typer's runner, on the real Message DB."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.oauth2.credentials import Credentials
from tests.evaluation.fake_evaluation import FakeEvaluationService
from typer.testing import CliRunner

from messagedb_agent.cli import app
from messagedb_agent.evaluation.metrics import VERTEX_METRICS

runner = CliRunner()
PROGRESS = re.compile(r"^\[\s*(\d+)/(\d+)\] (PASS|FAIL)  (\S+)", re.MULTILINE)


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "MODEL_NAME": "offline",
        "LOCAL_USER": f"cli-{uuid.uuid4().hex[:8]}",
    }


@pytest.fixture
def service() -> Iterator[FakeEvaluationService]:
    server = FakeEvaluationService().start()
    yield server
    server.stop()


def invoke(env: dict[str, str], *args: str) -> Any:
    return runner.invoke(app, ["eval", *args], env=env)


def test_a_limited_run_on_the_offline_model_reports_each_case_and_writes_json(
    env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "run.json"

    result = invoke(env, "--limit", "4", "--json", str(out))

    assert result.exit_code == 0, result.output
    assert "eval set tool_choice v1: 4 of" in result.stdout
    progress = PROGRESS.findall(result.stdout)
    assert [(index, total) for index, total, _, _ in progress] == [
        ("1", "4"),
        ("2", "4"),
        ("3", "4"),
        ("4", "4"),
    ]
    assert "by tool:" in result.stdout
    assert "tool_parameter_kv_match" in result.stdout
    document = json.loads(out.read_text())
    assert document["eval_set"]["name"] == "tool_choice"
    assert document["eval_set"]["version"] == 1
    assert document["run"]["model"] == "offline"
    assert document["totals"]["cases"] == 4
    passed = sum(mark == "PASS" for _, _, mark, _ in progress)
    assert document["totals"]["passed"] == passed
    assert [case["id"] for case in document["cases"]] == [p[3] for p in progress]
    for case in document["cases"]:
        assert case["thread_id"]
        assert set(case["scores"]) == set(VERTEX_METRICS)
        assert json.loads(case["reference"])["tool_calls"]


def test_json_to_stdout_keeps_the_report_on_stderr(env: dict[str, str]) -> None:
    result = invoke(env, "--only", "calculate", "--limit", "2", "--json", "-")

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["run"]["selection"] == {"only": ["calculate"], "limit": 2, "cases": 2}
    assert all(
        any(call["tool"] == "calculate" for call in case["expected"]) for case in document["cases"]
    )
    assert len(PROGRESS.findall(result.stderr)) == 2


def test_min_accuracy_decides_the_exit_status(env: dict[str, str], tmp_path: Path) -> None:
    cases = tmp_path / "cases.jsonl"
    cases.write_text(
        json.dumps({"eval_set": "strict", "version": 3})
        + "\n"
        + json.dumps(
            {
                "id": "greeting-echoed",
                "request": "hi",
                "category": "single",
                "expected": [{"tool": "echo", "arguments": {"message": "hi"}}],
            }
        )
        + "\n"
    )

    lenient = invoke(env, "--cases", str(cases))
    strict = invoke(env, "--cases", str(cases), "--min-accuracy", "0.5")

    assert lenient.exit_code == 0, lenient.output
    assert "eval set strict v3: 1 of 1 cases" in lenient.stdout
    assert "✗ greeting-echoed (single): 'hi'" in lenient.stdout
    assert "expected: echo(message~'hi')" in lenient.stdout
    assert "accuracy 0.0% (0/1 cases passed)" in lenient.stdout
    assert strict.exit_code == 1
    assert "accuracy 0.0% is below --min-accuracy 50.0%" in strict.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--only", "send_email"], "error: --only send_email: no case expects it (choose from "),
        (["--vertex"], "error: --vertex needs GOOGLE_CLOUD_PROJECT"),
        (["--cases", "/nonexistent/set.jsonl"], "error: cannot read the eval set"),
    ],
)
def test_bad_options_are_one_line_errors(
    env: dict[str, str], args: list[str], message: str
) -> None:
    result = invoke({**env, "GOOGLE_CLOUD_PROJECT": ""}, *args)

    assert result.exit_code == 1
    assert result.output.startswith(message)
    assert len(result.output.strip().splitlines()) == 1


def test_vertex_scores_the_run_with_the_evaluation_service(
    env: dict[str, str],
    service: FakeEvaluationService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import google.auth

    token = Credentials(token="adc-token")  # type: ignore[no-untyped-call]
    monkeypatch.setattr(google.auth, "default", lambda *args, **kwargs: (token, "demo-project"))
    vertex_env = {
        **env,
        "GOOGLE_CLOUD_PROJECT": "demo-project",
        "GOOGLE_CLOUD_LOCATION": "us-central1",
        "VERTEX_API_ENDPOINT": service.url,
    }
    out = tmp_path / "run.json"

    result = invoke(vertex_env, "--limit", "3", "--vertex", "--json", str(out))

    assert result.exit_code == 0, result.output
    assert f"scoring 3 cases with the Gen AI evaluation service at {service.url}" in result.stdout
    assert re.search(r"tool_name_match\s+local \d\.\d{3}\s+service \d\.\d{3}", result.stdout)
    assert len(service.requests) == 4
    assert {r.path for r in service.requests} == {
        "/v1/projects/demo-project/locations/us-central1:evaluateInstances"
    }
    assert all(r.headers["authorization"] == "Bearer adc-token" for r in service.requests)
    document = json.loads(out.read_text())
    assert document["vertex_metrics"]["service_endpoint"] == service.url
    assert set(document["vertex_metrics"]["service"]) == set(VERTEX_METRICS)
    sent = service.requests[0].body["toolCallValidInput"]["instances"]
    assert [i["reference"] for i in sent] == [case["reference"] for case in document["cases"]]
    assert all(set(case["service_scores"]) == set(VERTEX_METRICS) for case in document["cases"])


def test_a_failed_submission_still_reports_the_run_and_exits_1(
    env: dict[str, str],
    service: FakeEvaluationService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import google.auth

    token = Credentials(token="adc-token")  # type: ignore[no-untyped-call]
    monkeypatch.setattr(google.auth, "default", lambda *args, **kwargs: (token, "demo-project"))
    service.fail_next(403, "Permission 'aiplatform.locations.evaluateInstances' denied")
    vertex_env = {**env, "GOOGLE_CLOUD_PROJECT": "demo-project", "VERTEX_API_ENDPOINT": service.url}
    out = tmp_path / "run.json"

    result = invoke(vertex_env, "--limit", "1", "--vertex", "--json", str(out))

    assert result.exit_code == 1
    assert "accuracy " in result.stdout
    assert "refused tool_call_valid: 403 Permission" in result.stderr
    assert json.loads(out.read_text())["vertex_metrics"]["service"] is None


def test_eval_has_help() -> None:
    result = runner.invoke(app, ["eval", "--help"])
    assert result.exit_code == 0
    assert "--min-accuracy" in result.output
