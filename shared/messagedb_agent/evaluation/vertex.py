"""Scoring a run with Vertex AI's Gen AI evaluation service, next to the local scores.

The four tool-use metrics go to `evaluateInstances`
(https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/evaluation-api, and the
REST reference https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations/evaluateInstances):
one request per metric and batch, `{"toolCallValidInput": {"metricSpec": {}, "instances":
[{"prediction": ..., "reference": ...}]}}` and so on, each prediction and reference a JSON
string `{"content": ..., "tool_calls": [...]}`; the answer holds one score per instance, in
order, under `toolCallValidResults.toolCallValidMetricValues` and the like.

The request goes through `google-cloud-aiplatform`'s own `EvaluationServiceClient` with its REST
transport, which takes any endpoint (a regional one, a private one, or a local stand-in). That
package is the `eval` extra and is imported here only when a submission is made, so nothing
the Cloud Functions import ever loads it.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from messagedb_agent.evaluation.metrics import (
    TOOL_CALL_VALID,
    TOOL_NAME_MATCH,
    TOOL_PARAMETER_KEY_MATCH,
    TOOL_PARAMETER_KV_MATCH,
    VERTEX_METRICS,
)

MAX_INSTANCES_PER_REQUEST = 25
TIMEOUT_SECONDS = 60.0
INSTALL_HINT = "install the eval extra: .local/tools/bin/uv sync --extra eval"


@dataclass(frozen=True, slots=True)
class _Metric:
    input_field: str  # the request's field, e.g. tool_call_valid_input
    results_field: str  # the response's, e.g. tool_call_valid_results
    values_field: str  # inside it, e.g. tool_call_valid_metric_values
    input_type: str  # the proto message names in google.cloud.aiplatform_v1.types
    spec_type: str
    instance_type: str


_METRICS = {
    TOOL_CALL_VALID: _Metric(
        "tool_call_valid_input",
        "tool_call_valid_results",
        "tool_call_valid_metric_values",
        "ToolCallValidInput",
        "ToolCallValidSpec",
        "ToolCallValidInstance",
    ),
    TOOL_NAME_MATCH: _Metric(
        "tool_name_match_input",
        "tool_name_match_results",
        "tool_name_match_metric_values",
        "ToolNameMatchInput",
        "ToolNameMatchSpec",
        "ToolNameMatchInstance",
    ),
    TOOL_PARAMETER_KEY_MATCH: _Metric(
        "tool_parameter_key_match_input",
        "tool_parameter_key_match_results",
        "tool_parameter_key_match_metric_values",
        "ToolParameterKeyMatchInput",
        "ToolParameterKeyMatchSpec",
        "ToolParameterKeyMatchInstance",
    ),
    TOOL_PARAMETER_KV_MATCH: _Metric(
        "tool_parameter_kv_match_input",
        "tool_parameter_kv_match_results",
        "tool_parameter_kv_match_metric_values",
        "ToolParameterKVMatchInput",
        "ToolParameterKVMatchSpec",
        "ToolParameterKVMatchInstance",
    ),
}


def service_endpoint(location: str, override: str | None = None) -> str:
    """The endpoint to call: the override (a base URL, scheme optional), else the region's."""
    if override:
        return override.rstrip("/")
    return (
        "aiplatform.googleapis.com"
        if location == "global"
        else f"{location}-aiplatform.googleapis.com"
    )


def evaluate_instances(
    instances: Sequence[tuple[str, str]],
    *,
    project: str,
    location: str,
    endpoint: str | None = None,
    credentials: Any = None,
    strict_string_match: bool = False,
    metrics: Sequence[str] = VERTEX_METRICS,
) -> list[dict[str, float]]:
    """The service's score of each (prediction, reference) pair for each metric, in order.

    `credentials` default to Application Default Credentials. Failures come back as one
    `RuntimeError` naming the cause: the extra not installed, no credentials, or the
    service's own refusal.
    """
    try:
        from google.api_core import exceptions as api_exceptions
        from google.auth import exceptions as auth_exceptions

        # Imported by name: the SDK is an optional extra, and a static import would have
        # type checkers resolve all of `google.cloud` through it.
        service = importlib.import_module("google.cloud.aiplatform_v1.services.evaluation_service")
        types = importlib.import_module("google.cloud.aiplatform_v1.types.evaluation_service")
    except ImportError as exc:
        raise RuntimeError(
            f"google-cloud-aiplatform is not installed ({exc.name}); {INSTALL_HINT}"
        ) from None

    address = service_endpoint(location, endpoint)
    try:
        client = service.EvaluationServiceClient(
            credentials=credentials,
            transport="rest",
            client_options={"api_endpoint": address},
        )
    except auth_exceptions.DefaultCredentialsError:
        raise RuntimeError(
            "no Google Cloud credentials for the evaluation service: run "
            "`gcloud auth application-default login`"
        ) from None
    scores: list[dict[str, float]] = [{} for _ in instances]
    location_path = f"projects/{project}/locations/{location}"
    for metric in metrics:
        shape = _METRICS[metric]
        for start in range(0, len(instances), MAX_INSTANCES_PER_REQUEST):
            batch = instances[start : start + MAX_INSTANCES_PER_REQUEST]
            spec_arguments = (
                {"use_strict_string_match": strict_string_match}
                if metric == TOOL_PARAMETER_KV_MATCH
                else {}
            )
            metric_input = getattr(types, shape.input_type)(
                metric_spec=getattr(types, shape.spec_type)(**spec_arguments),
                instances=[
                    getattr(types, shape.instance_type)(prediction=prediction, reference=reference)
                    for prediction, reference in batch
                ],
            )
            request = types.EvaluateInstancesRequest(
                location=location_path, **{shape.input_field: metric_input}
            )
            try:
                response = client.evaluate_instances(request=request, timeout=TIMEOUT_SECONDS)
            except api_exceptions.GoogleAPICallError as exc:
                raise RuntimeError(
                    f"the evaluation service at {address} refused {metric}: {_reason(exc)}"
                ) from None
            except auth_exceptions.GoogleAuthError as exc:
                raise RuntimeError(f"Google Cloud credentials failed: {exc}") from None
            values = getattr(getattr(response, shape.results_field), shape.values_field)
            if len(values) != len(batch):
                raise RuntimeError(
                    f"the evaluation service answered {len(values)} {metric} score(s) "
                    f"for {len(batch)} instance(s)"
                )
            for offset, value in enumerate(values):
                scores[start + offset][metric] = float(value.score)
    return scores


def _reason(exc: Any) -> str:
    """The service's own message and status (the REST client prefixes its URL to it)."""
    response = getattr(exc, "response", None)
    try:
        error = response.json()["error"] if response is not None else {}
    except (ValueError, KeyError, TypeError, AttributeError):
        error = {}
    message = error.get("message") if isinstance(error, dict) else None
    status = f"{exc.code} " if getattr(exc, "code", None) else ""
    return f"{status}{message or exc.message}"
