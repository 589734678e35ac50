"""Submitting scores through google-cloud-aiplatform's own client, against a strict local
stand-in of the Gen AI evaluation service's `evaluateInstances`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google.oauth2.credentials import Credentials
from tests.evaluation.fake_evaluation import FakeEvaluationService

from messagedb_agent.evaluation import vertex
from messagedb_agent.evaluation.metrics import VERTEX_METRICS
from messagedb_agent.evaluation.vertex import evaluate_instances, service_endpoint

PROJECT = "demo-project"
LOCATION = "us-central1"
PATH = f"/v1/projects/{PROJECT}/locations/{LOCATION}:evaluateInstances"


@pytest.fixture
def service() -> Iterator[FakeEvaluationService]:
    server = FakeEvaluationService().start()
    yield server
    server.stop()


def message(*calls: tuple[str, dict[str, Any]], content: str = "") -> str:
    return json.dumps(
        {"content": content, "tool_calls": [{"name": n, "arguments": a} for n, a in calls]}
    )


RIGHT = (message(("add_task", {"title": "milk"})), message(("add_task", {"title": "milk"})))
WRONG_TOOL = (message(("complete_task", {"task_id": 2})), message(("delete_task", {"task_id": 2})))
SILENT = (message(content="Hi!"), message())


def submit(service: FakeEvaluationService, pairs: list[tuple[str, str]], **options: Any) -> Any:
    return evaluate_instances(
        pairs,
        project=PROJECT,
        location=LOCATION,
        endpoint=service.url,
        credentials=Credentials(token="test-token"),  # type: ignore[no-untyped-call]
        **options,
    )


def test_each_metric_is_one_documented_request_and_each_score_lands_on_its_instance(
    service: FakeEvaluationService,
) -> None:
    scores = submit(service, [RIGHT, WRONG_TOOL, SILENT])

    assert scores == [
        dict.fromkeys(VERTEX_METRICS, 1.0),
        {
            "tool_call_valid": 1.0,
            "tool_name_match": 0.0,
            "tool_parameter_key_match": 1.0,
            "tool_parameter_kv_match": 1.0,
        },
        dict.fromkeys(VERTEX_METRICS, 1.0),
    ]
    assert service.rejected == []
    assert [request.path for request in service.requests] == [PATH] * 4
    assert service.requests[0].headers["authorization"] == "Bearer test-token"
    assert service.requests[0].body == {
        "toolCallValidInput": {
            "metricSpec": {},
            "instances": [
                {"prediction": prediction, "reference": reference}
                for prediction, reference in (RIGHT, WRONG_TOOL, SILENT)
            ],
        }
    }
    assert [next(iter(r.body)) for r in service.requests] == [
        "toolCallValidInput",
        "toolNameMatchInput",
        "toolParameterKeyMatchInput",
        "toolParameterKvMatchInput",
    ]


def test_strict_string_matching_is_sent_in_the_kv_spec(service: FakeEvaluationService) -> None:
    loose = (message(("add_task", {"title": "Milk"})), message(("add_task", {"title": "milk"})))

    strict = submit(service, [loose], metrics=["tool_parameter_kv_match"], strict_string_match=True)
    relaxed = submit(service, [loose], metrics=["tool_parameter_kv_match"])

    assert service.requests[0].body["toolParameterKvMatchInput"]["metricSpec"] == {
        "useStrictStringMatch": True
    }
    assert strict == [{"tool_parameter_kv_match": 0.0}]
    assert relaxed == [{"tool_parameter_kv_match": 1.0}]


def test_many_instances_are_sent_in_batches_and_kept_in_order(
    service: FakeEvaluationService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vertex, "MAX_INSTANCES_PER_REQUEST", 2)
    pairs = [RIGHT, WRONG_TOOL, RIGHT, WRONG_TOOL, SILENT]

    scores = submit(service, pairs, metrics=["tool_name_match"])

    assert [len(r.body["toolNameMatchInput"]["instances"]) for r in service.requests] == [2, 2, 1]
    assert [s["tool_name_match"] for s in scores] == [1.0, 0.0, 1.0, 0.0, 1.0]


def test_the_services_refusal_is_one_error_naming_the_metric(
    service: FakeEvaluationService,
) -> None:
    service.fail_next(429, "Quota exceeded for aiplatform.googleapis.com/online_evaluation")

    with pytest.raises(
        RuntimeError, match=r"refused tool_call_valid: 429 Quota exceeded for aiplatform"
    ):
        submit(service, [RIGHT])


def test_the_regional_endpoint_is_the_default() -> None:
    assert service_endpoint("europe-west4") == "europe-west4-aiplatform.googleapis.com"
    assert service_endpoint("global") == "aiplatform.googleapis.com"
    assert service_endpoint("us-central1", "http://127.0.0.1:9/") == "http://127.0.0.1:9"


# -- the stand-in's own strictness -------------------------------------------------------------

GOOD = {
    "toolNameMatchInput": {
        "metricSpec": {},
        "instances": [dict(zip(("prediction", "reference"), RIGHT, strict=True))],
    }
}


def post(service: FakeEvaluationService, body: Any, **headers: str) -> httpx.Response:
    return httpx.post(
        service.url + PATH,
        content=body if isinstance(body, bytes) else json.dumps(body).encode(),
        headers={"Authorization": "Bearer t", "Content-Type": "application/json", **headers},
    )


def test_the_stand_in_answers_a_well_formed_body_in_the_documented_shape(
    service: FakeEvaluationService,
) -> None:
    answer = post(service, GOOD)
    assert answer.status_code == 200
    assert answer.json() == {
        "toolNameMatchResults": {"toolNameMatchMetricValues": [{"score": 1.0}]}
    }
    snake = {
        "tool_name_match_input": {
            "metric_spec": {},
            "instances": GOOD["toolNameMatchInput"]["instances"],
        }
    }
    assert post(service, snake).status_code == 200


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "Invalid JSON payload"),
        ({}, "exactly one metric input"),
        ({**GOOD, "toolCallValidInput": GOOD["toolNameMatchInput"]}, "exactly one metric input"),
        ({"exactMatchInput": {"metricSpec": {}, "instances": []}}, "tool-use metrics only"),
        (
            {"toolNameMatchInput": {"instances": GOOD["toolNameMatchInput"]["instances"]}},
            "metricSpec is required",
        ),
        ({"toolNameMatchInput": {"metricSpec": {}, "instances": []}}, "must not be empty"),
        (
            {
                "toolNameMatchInput": {
                    "metricSpec": {},
                    "instance": GOOD["toolNameMatchInput"]["instances"][0],
                }
            },
            'Unknown name "instance"',
        ),
        (
            {
                "toolNameMatchInput": {
                    "metricSpec": {"useStrictStringMatch": True},
                    "instances": GOOD["toolNameMatchInput"]["instances"],
                }
            },
            'Unknown name "useStrictStringMatch"',
        ),
        (
            {"toolNameMatchInput": {"metricSpec": {}, "instances": [{"prediction": RIGHT[0]}]}},
            "reference is required",
        ),
        (
            {
                "toolNameMatchInput": {
                    "metricSpec": {},
                    "instances": [{"prediction": RIGHT[0], "reference": "add_task(title=milk)"}],
                }
            },
            "reference is not a JSON string with content and tool_calls",
        ),
        (
            {
                "toolNameMatchInput": {
                    "metricSpec": {},
                    "instances": [{"prediction": {"name": "x"}, "reference": RIGHT[1]}],
                }
            },
            "prediction is required and must be a string",
        ),
        ({**GOOD, "location": "projects/other/locations/us-central1"}, "does not match the URL"),
    ],
)
def test_the_stand_in_refuses_a_malformed_body_with_400(
    service: FakeEvaluationService, body: Any, reason: str
) -> None:
    answer = post(service, body)

    assert answer.status_code == 400
    assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert reason in answer.json()["error"]["message"]
    assert service.requests == []


def test_the_stand_in_wants_a_bearer_token_and_json(service: FakeEvaluationService) -> None:
    unsigned = httpx.post(service.url + PATH, json=GOOD)
    assert unsigned.status_code == 401
    assert post(service, GOOD, **{"Content-Type": "text/plain"}).status_code == 400


def test_a_malformed_prediction_scores_zero_rather_than_being_refused(
    service: FakeEvaluationService,
) -> None:
    scores = submit(service, [("not json", RIGHT[1])], metrics=["tool_call_valid"])
    assert scores == [{"tool_call_valid": 0.0}]
