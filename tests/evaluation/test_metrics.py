"""Pass/fail matching and the Vertex-style tool-use scores, on hand-made calls."""

from __future__ import annotations

import json

import pytest

from messagedb_agent.evaluation.cases import AnyOf, ExpectedCall
from messagedb_agent.evaluation.metrics import (
    ActualCall,
    judge,
    mean_scores,
    prediction_json,
    reference_json,
    tool_call_valid,
    tool_name_match,
    tool_parameter_key_match,
    tool_parameter_kv_match,
    value_matches,
    vertex_scores,
)


def expect(tool: str, optional: bool = False, **arguments: object) -> ExpectedCall:
    return ExpectedCall.model_validate({"tool": tool, "arguments": arguments, "optional": optional})


def made(name: str, **arguments: object) -> ActualCall:
    return ActualCall(name, arguments)


@pytest.mark.parametrize(
    ("expected", "actual", "matches"),
    [
        ("milk", "Buy  MILK", True),
        ("renew passport", "Renew my passport", False),
        ("12*(3+4)", "12 * (3 + 4)", True),
        ("Asia/Tokyo", "asia/tokyo", True),
        ("milk", 3, False),
        (2, 2, True),
        (2, "2", True),
        (2, 2.0, True),
        (2, 3, False),
        (2, True, False),
        (2, "two", False),
        (True, True, True),
        (True, 1, False),
        (AnyOf(any_of=("2**10", "2^10")), "2 ^ 10", True),
        (AnyOf(any_of=("2**10", "2^10")), "pow(2, 10)", False),
    ],
)
def test_value_matching(expected: object, actual: object, matches: bool) -> None:
    assert value_matches(expected, actual) is matches  # type: ignore[arg-type]


def test_the_right_calls_with_the_right_arguments_pass() -> None:
    verdict = judge(
        [expect("add_task", title="bread"), expect("complete_task", task_id=1)],
        [
            made("add_task", title="Buy bread", description="wholemeal"),
            made("complete_task", task_id=1),
        ],
    )
    assert verdict.passed
    assert verdict.tools_right
    assert verdict.problems == ()


def test_a_wrong_argument_fails_though_the_tools_are_right() -> None:
    verdict = judge([expect("delete_task", task_id=3)], [made("delete_task", task_id=2)])
    assert not verdict.passed
    assert verdict.tools_right
    assert verdict.problems == ("delete_task: task_id=2, expected 3",)


def test_a_missing_argument_fails() -> None:
    verdict = judge(
        [expect("update_task", task_id=1, title="oat")], [made("update_task", task_id=1)]
    )
    assert not verdict.passed
    assert verdict.problems == ("update_task: no title argument (expected 'oat')",)


def test_the_wrong_tool_fails_and_says_what_was_expected() -> None:
    verdict = judge([expect("delete_task", task_id=2)], [made("complete_task", task_id=2)])
    assert not verdict.passed
    assert not verdict.tools_right
    assert verdict.problems == ("expected delete_task(task_id~2); got complete_task(task_id=2)",)


def test_order_matters_and_extra_calls_fail() -> None:
    expected = [expect("add_task"), expect("list_tasks")]
    assert not judge(expected, [made("list_tasks"), made("add_task")]).tools_right
    assert not judge(
        expected, [made("add_task"), made("list_tasks"), made("list_tasks")]
    ).tools_right
    assert not judge(expected, [made("add_task")]).tools_right


def test_an_optional_call_may_be_made_or_skipped() -> None:
    expected = [expect("list_tasks", optional=True), expect("complete_task", task_id=1)]
    skipped = judge(expected, [made("complete_task", task_id=1)])
    made_it = judge(expected, [made("list_tasks", status="all"), made("complete_task", task_id=1)])
    assert skipped.passed
    assert [c.tool for c in skipped.reference] == ["complete_task"]
    assert made_it.passed
    assert [c.tool for c in made_it.reference] == ["list_tasks", "complete_task"]
    assert not judge(expected, [made("list_tasks")]).passed


def test_no_call_is_right_only_when_none_is_expected() -> None:
    assert judge([], []).passed
    calling = judge([], [made("get_current_time")])
    assert not calling.passed
    assert calling.problems == ("expected no tool call; got get_current_time()",)


# -- Vertex-style ------------------------------------------------------------------------------

REFERENCE = reference_json([expect("book", movie="Dune", tickets=2)])


def prediction(*calls: dict[str, object], content: str = "") -> str:
    return json.dumps({"content": content, "tool_calls": list(calls)})


def test_a_perfect_prediction_scores_one_everywhere() -> None:
    scores = vertex_scores(
        prediction({"name": "book", "arguments": {"movie": "Dune", "tickets": 2}}), REFERENCE
    )
    assert scores == {
        "tool_call_valid": 1.0,
        "tool_name_match": 1.0,
        "tool_parameter_key_match": 1.0,
        "tool_parameter_kv_match": 1.0,
    }


def test_parameter_scores_are_the_share_of_reference_parameters_matched() -> None:
    half = prediction({"name": "book", "arguments": {"movie": "dune", "tickets": 3}})
    assert tool_parameter_key_match(half, REFERENCE) == 1.0
    assert tool_parameter_kv_match(half, REFERENCE) == 0.5  # "dune" matches loosely; 3 is not 2
    assert tool_parameter_kv_match(half, REFERENCE, strict=True) == 0.0  # "dune" is not "Dune"
    numeric_string = prediction({"name": "book", "arguments": {"movie": "Dune", "tickets": "2"}})
    assert tool_parameter_kv_match(numeric_string, REFERENCE) == 1.0
    assert tool_parameter_kv_match(numeric_string, REFERENCE, strict=True) == 0.5
    one_key = prediction({"name": "book", "arguments": {"movie": "Dune"}})
    assert tool_parameter_key_match(one_key, REFERENCE) == 0.5


def test_a_wrong_tool_scores_zero_on_name_match() -> None:
    wrong = prediction({"name": "cancel", "arguments": {"movie": "Dune", "tickets": 2}})
    assert tool_call_valid(wrong, REFERENCE) == 1.0
    assert tool_name_match(wrong, REFERENCE) == 0.0


@pytest.mark.parametrize(
    "bad",
    [
        "not json",
        json.dumps(["book"]),
        json.dumps({"content": "", "tool_calls": "book"}),
        json.dumps({"content": "", "tool_calls": [{"arguments": {}}]}),
        json.dumps({"content": "", "tool_calls": [{"name": "book", "arguments": "movie=Dune"}]}),
        json.dumps({"content": 3, "tool_calls": []}),
    ],
)
def test_a_malformed_prediction_scores_zero_on_every_metric(bad: str) -> None:
    assert set(vertex_scores(bad, REFERENCE).values()) == {0.0}


def test_no_call_when_one_is_expected_is_not_a_valid_tool_call() -> None:
    silent = prediction(content="Dune is a good film.")
    assert vertex_scores(silent, REFERENCE) == {
        "tool_call_valid": 0.0,
        "tool_name_match": 0.0,
        "tool_parameter_key_match": 0.0,
        "tool_parameter_kv_match": 0.0,
    }


def test_no_call_when_none_is_expected_scores_one() -> None:
    assert set(vertex_scores(prediction(content="Hello!"), reference_json([])).values()) == {1.0}


def test_the_messages_follow_the_documented_shape() -> None:
    assert json.loads(prediction_json("Done.", [made("add_task", title="milk")])) == {
        "content": "Done.",
        "tool_calls": [{"name": "add_task", "arguments": {"title": "milk"}}],
    }
    alternatives = reference_json([expect("calculate", expression=AnyOf(any_of=("2**10", "2^10")))])
    assert json.loads(alternatives)["tool_calls"] == [
        {"name": "calculate", "arguments": {"expression": "2**10"}}
    ]


def test_means_are_taken_per_metric() -> None:
    assert mean_scores([{"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 0.0}, {"a": 0.5}]) == {
        "a": 0.5,
        "b": 0.0,
    }
