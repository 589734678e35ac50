"""A local stand-in for Vertex AI's Gen AI evaluation service, tool-use metrics only.

It serves `POST /v1/projects/{project}/locations/{location}:evaluateInstances` on 127.0.0.1 and
accepts only the request shape Google documents for the four tool-use metrics:

* the method and its body: https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations/evaluateInstances
  (one `metric_inputs` member; `toolCallValidInput`, `toolNameMatchInput`,
  `toolParameterKeyMatchInput`, `toolParameterKvMatchInput`, each a required `metricSpec` and
  required `instances` of `{prediction, reference}` strings);
* the inputs and results: https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/evaluation-api
  (prediction and reference are JSON strings holding `content` and `tool_calls`, each call a
  `name` and its `arguments`; `ToolParameterKVMatchSpec` has only `use_strict_string_match`;
  the answer is `toolCallValidResults.toolCallValidMetricValues[].score` and so on, in the
  instances' order).

That page writes the instances as one `instance` object; the v1 REST reference and the proto
behind both (`google.cloud.aiplatform.v1.ToolCallValidInput`) have a repeated `instances` and
no `instance` field, and the service parses by the proto, so the stand-in requires
`instances` and answers `instance` as the service answers an unknown field: 400. Field names
may be lowerCamelCase or the proto's snake_case, as the proto3 JSON mapping allows.

A body that breaks a rule is answered 400 in Google's error format and scores nothing. The
scores it gives are its own simple reading of the documented definitions, independent of the
code under test; tests assert that what it answers arrives, not that two copies agree.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from tests.local_service import LocalService

ROUTE = re.compile(
    r"^/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/:]+):evaluateInstances$"
)

# metric input field (camelCase) -> (its results field, the values field inside it)
METRICS = {
    "toolCallValidInput": ("toolCallValidResults", "toolCallValidMetricValues"),
    "toolNameMatchInput": ("toolNameMatchResults", "toolNameMatchMetricValues"),
    "toolParameterKeyMatchInput": (
        "toolParameterKeyMatchResults",
        "toolParameterKeyMatchMetricValues",
    ),
    "toolParameterKvMatchInput": (
        "toolParameterKvMatchResults",
        "toolParameterKvMatchMetricValues",
    ),
}
# The other members of the `metric_inputs` union (same REST reference): real, but not served.
OTHER_METRIC_INPUTS = {
    "exactMatchInput",
    "bleuInput",
    "rougeInput",
    "fluencyInput",
    "coherenceInput",
    "safetyInput",
    "groundednessInput",
    "fulfillmentInput",
    "summarizationQualityInput",
    "pairwiseSummarizationQualityInput",
    "summarizationHelpfulnessInput",
    "summarizationVerbosityInput",
    "questionAnsweringQualityInput",
    "pairwiseQuestionAnsweringQualityInput",
    "questionAnsweringRelevanceInput",
    "questionAnsweringHelpfulnessInput",
    "questionAnsweringCorrectnessInput",
    "pointwiseMetricInput",
    "pairwiseMetricInput",
    "cometInput",
    "metricxInput",
}


class Invalid(Exception):
    """A body the service would refuse with 400 INVALID_ARGUMENT."""


@dataclass(frozen=True)
class Received:
    path: str
    project: str
    location: str
    headers: dict[str, str]  # names lower-cased
    body: dict[str, Any]


@dataclass
class FakeEvaluationService(LocalService):
    """Start with `start()`; `requests` holds every well-formed request, `rejected` the rest."""

    requests: list[Received] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    _failures: list[tuple[int, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    thread_name: ClassVar[str] = "fake-evaluation"

    def fail_next(self, status: int, message: str) -> None:
        """Answer the next well-formed request with this error instead of scores."""
        with self._lock:
            self._failures.append((status, message))

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?", 1)[0]
        route = ROUTE.match(path)
        if route is None:
            self._send(handler, 404, _error(404, f"no route {path}"))
            return
        if not (handler.headers.get("Authorization") or "").startswith("Bearer "):
            self._send(handler, 401, _error(401, "Request is missing required authentication."))
            return
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            if not (handler.headers.get("Content-Type") or "").startswith("application/json"):
                raise Invalid("the body must be JSON (Content-Type: application/json)")
            try:
                body = json.loads(raw)
            except ValueError:
                raise Invalid("Invalid JSON payload received.") from None
            answer = evaluate(body, route.group("location"), route.group("project"))
        except Invalid as exc:
            with self._lock:
                self.rejected.append((400, str(exc)))
            self._send(handler, 400, _error(400, str(exc)))
            return
        with self._lock:
            self.requests.append(
                Received(
                    path,
                    route.group("project"),
                    route.group("location"),
                    {name.lower(): value for name, value in handler.headers.items()},
                    body,
                )
            )
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            self._send(handler, failure[0], _error(*failure))
            return
        self._send(handler, 200, answer)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)


def _error(status: int, message: str) -> dict[str, Any]:
    names = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED"}
    names |= {404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL"}
    return {"error": {"code": status, "message": message, "status": names.get(status, "UNKNOWN")}}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _fields(message: Any, where: str, allowed: set[str]) -> dict[str, Any]:
    """The message's fields by camelCase name; unknown or repeated names are refused."""
    if not isinstance(message, dict):
        raise Invalid(f"Invalid value at '{where}': expected an object")
    named: dict[str, Any] = {}
    for key, value in message.items():
        camel = _camel(key)
        if camel not in allowed:
            raise Invalid(f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}'")
        if camel in named:
            raise Invalid(f"Invalid JSON payload received. Field '{camel}' is set twice")
        named[camel] = value
    return named


def evaluate(body: Any, location: str, project: str) -> dict[str, Any]:
    """The documented answer to a tool-use metric request, or `Invalid`."""
    top = _fields(body, "", {"location", *METRICS, *OTHER_METRIC_INPUTS, "autoraterConfig"})
    if "location" in top and top["location"] != f"projects/{project}/locations/{location}":
        raise Invalid("location in the body does not match the URL")
    inputs = [name for name in top if name in METRICS or name in OTHER_METRIC_INPUTS]
    if len(inputs) != 1:
        raise Invalid(f"exactly one metric input is required, got {len(inputs)}")
    name = inputs[0]
    if name not in METRICS:
        raise Invalid(f"{name}: this stand-in serves the tool-use metrics only")
    spec_fields = {"useStrictStringMatch"} if name == "toolParameterKvMatchInput" else set()
    metric_input = _fields(top[name], name, {"metricSpec", "instances"})
    if "metricSpec" not in metric_input:
        raise Invalid(f"{name}.metricSpec is required")
    spec = _fields(metric_input["metricSpec"], f"{name}.metricSpec", spec_fields)
    strict = spec.get("useStrictStringMatch", False)
    if not isinstance(strict, bool):
        raise Invalid(f"{name}.metricSpec.useStrictStringMatch must be a boolean")
    instances = metric_input.get("instances")
    if not isinstance(instances, list) or not instances:
        raise Invalid(f"{name}.instances is required and must not be empty")
    values = []
    for index, raw in enumerate(instances):
        where = f"{name}.instances[{index}]"
        instance = _fields(raw, where, {"prediction", "reference"})
        for required in ("prediction", "reference"):
            if not isinstance(instance.get(required), str):
                raise Invalid(f"{where}.{required} is required and must be a string")
        reference = _tool_calls(instance["reference"])
        if reference is None:
            raise Invalid(f"{where}.reference is not a JSON string with content and tool_calls")
        values.append(
            {"score": _score(name, _tool_calls(instance["prediction"]), reference, strict)}
        )
    results, values_field = METRICS[name]
    return {results: {values_field: values}}


def _tool_calls(text: str) -> list[dict[str, Any]] | None:
    try:
        message = json.loads(text)
    except ValueError:
        return None
    if not isinstance(message, dict) or not isinstance(message.get("content"), str):
        return None
    calls = message.get("tool_calls")
    if not isinstance(calls, list):
        return None
    for call in calls:
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            return None
        if not isinstance(call.get("arguments", {}), dict):
            return None
    return calls


def _score(
    metric: str, predicted: list[dict[str, Any]] | None, wanted: list[dict[str, Any]], strict: bool
) -> float:
    if predicted is None:
        return 0.0
    if metric == "toolCallValidInput":
        return 1.0 if predicted or not wanted else 0.0
    if metric == "toolNameMatchInput":
        return 1.0 if [c["name"] for c in predicted] == [c["name"] for c in wanted] else 0.0
    pairs = [
        (key, value, predicted[i].get("arguments", {}) if i < len(predicted) else {})
        for i, call in enumerate(wanted)
        for key, value in call.get("arguments", {}).items()
    ]
    if not pairs:
        return 1.0 if predicted or not wanted else 0.0
    if metric == "toolParameterKeyMatchInput":
        return sum(key in got for key, _, got in pairs) / len(pairs)

    def same(want: Any, got: Any) -> bool:
        if strict:
            return bool(want == got)
        return str(want).strip().lower() == str(got).strip().lower()

    return sum(key in got and same(value, got[key]) for key, value, got in pairs) / len(pairs)
