"""Cases run through the real engine and the real Gemini client, against a local Vertex AI
stand-in whose replies are scripted: what the model asked for is read back from the events."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from google.oauth2.credentials import Credentials
from pydantic import ValidationError
from tests.llm.fake_vertex import SERVED_MODELS, FakeVertex, gemini_reply

from messagedb_agent.engine.step import Engine
from messagedb_agent.evaluation.cases import EvalCase, load_eval_set
from messagedb_agent.evaluation.report import report_lines, summarise, to_json
from messagedb_agent.evaluation.runner import EvalRun, new_run_id, run_case, run_cases
from messagedb_agent.llm.gemini import GeminiModel
from messagedb_agent.runtime import build_engine
from messagedb_agent.settings import Settings
from messagedb_agent.store.client import MessageStore
from messagedb_agent.tools.tasks import read_task_list


def served_gemini_model() -> str:
    """A Gemini model both the stand-in serves and the settings accept (neither retired nor
    unknown), whichever way the catalogue and the stand-in move."""
    for name in SERVED_MODELS:
        if name.startswith("gemini"):
            try:
                Settings(model_name=name, database_url=None)
            except ValidationError:
                continue
            return name
    raise AssertionError("the Vertex stand-in serves no Gemini model the settings accept")


MODEL = served_gemini_model()


@pytest.fixture
def vertex() -> Iterator[FakeVertex]:
    server = FakeVertex().start()
    yield server
    server.stop()


@pytest.fixture
def engine(vertex: FakeVertex, settings: Settings, store: MessageStore) -> Engine:
    gemini = GeminiModel(
        project="demo-project",
        location=settings.model.google_cloud_location,
        base_url=vertex.url,
        credentials=Credentials(token="test-token"),
    )
    return build_engine(settings.replace(model_name=MODEL, max_llm_attempts=1), store, gemini)


def call(name: str, **args: object) -> dict[str, object]:
    return {"functionCall": {"name": name, "args": args}}


def cases(*ids: str) -> list[EvalCase]:
    by_id = {case.id: case for case in load_eval_set().cases}
    return [by_id[case_id] for case_id in ids]


def test_three_cases_pass_and_one_fails_and_the_report_counts_them(
    engine: Engine,
    vertex: FakeVertex,
) -> None:
    chosen = cases("add-buy-milk", "calc-expression", "none-greeting", "delete-by-number")
    vertex.reply(gemini_reply(call("add_task", title="Buy milk")))
    vertex.reply(gemini_reply({"text": "Added “Buy milk”."}))
    vertex.reply(gemini_reply(call("calculate", expression="12 * (3 + 4)")))
    vertex.reply(gemini_reply({"text": "12 × (3 + 4) = 84"}))
    vertex.reply(gemini_reply({"text": "Hi! How can I help?"}))
    vertex.reply(gemini_reply(call("complete_task", task_id=2)))  # the wrong tool
    vertex.reply(gemini_reply({"text": "Marked task 2 as done."}))
    run_id = new_run_id()
    seen: list[tuple[int, str, bool]] = []

    results = run_cases(
        engine, chosen, run_id=run_id, on_result=lambda i, r: seen.append((i, r.case.id, r.passed))
    )

    assert seen == [
        (0, "add-buy-milk", True),
        (1, "calc-expression", True),
        (2, "none-greeting", True),
        (3, "delete-by-number", False),
    ]
    assert len(vertex.requests) == 7
    failed = results[3]
    assert [call.name for call in failed.actual] == ["complete_task"]
    assert failed.actual[0].ok is True
    assert failed.verdict.problems == (
        "expected delete_task(task_id~2); got complete_task(task_id=2)",
    )
    assert failed.reply == "Marked task 2 as done."
    assert failed.scores["tool_name_match"] == 0.0
    assert results[1].actual[0].arguments == {"expression": "12 * (3 + 4)"}

    now = datetime.now(UTC)
    run = EvalRun(load_eval_set(), MODEL, run_id, now, now, tuple(results))
    summary = summarise(run)
    assert (summary.overall.cases, summary.overall.passed) == (4, 3)
    assert {name: (t.cases, t.passed) for name, t in summary.by_tool.items()} == {
        "add_task": (1, 1),
        "calculate": (1, 1),
        "delete_task": (1, 0),
        "none": (1, 1),
    }
    assert summary.local_scores["tool_name_match"] == 0.75
    text = "\n".join(report_lines(run))
    assert "failures (1):" in text
    assert "✗ delete-by-number (single): 'delete task 2'" in text
    assert "accuracy 75.0% (3/4 cases passed)" in text
    document = to_json(run)
    assert document["totals"] == {
        "cases": 4,
        "passed": 3,
        "failed": 1,
        "accuracy": 0.75,
        "tool_choice_accuracy": 0.75,
    }
    assert document["eval_set"]["version"] == 1
    assert [case["passed"] for case in document["cases"]] == [True, True, True, False]


def test_each_case_has_its_own_user_so_task_lists_never_leak(
    engine: Engine,
    vertex: FakeVertex,
    store: MessageStore,
) -> None:
    chosen = cases("delete-by-number", "list-whats-on")
    for _ in chosen:
        vertex.reply(gemini_reply(call("list_tasks")))
        vertex.reply(gemini_reply({"text": "Here they are."}))
    run_id = new_run_id()

    run_cases(engine, chosen, run_id=run_id)

    first = read_task_list(store, f"eval-{run_id}-delete-by-number")
    second = read_task_list(store, f"eval-{run_id}-list-whats-on")
    assert [task.title for task in first.select()] == [
        "buy milk",
        "walk the dog",
        "call the dentist",
    ]
    assert [task.title for task in second.select()] == ["buy milk"]


def test_a_setup_message_is_a_turn_of_the_same_thread(
    engine: Engine,
    vertex: FakeVertex,
) -> None:
    (case,) = cases("complete-after-adding")
    vertex.reply(gemini_reply(call("add_task", title="Book a haircut")))
    vertex.reply(gemini_reply({"text": "Added task #1."}))
    vertex.reply(gemini_reply(call("complete_task", task_id=1)))
    vertex.reply(gemini_reply({"text": "Done."}))

    result = run_case(engine, case, run_id=new_run_id())

    assert result.passed
    assert [call.name for call in result.actual] == [
        "complete_task"
    ]  # the setup turn's add is not counted
    last = vertex.requests[-2].body["contents"]
    assert any("haircut" in str(content) for content in last)


def test_a_case_whose_setup_fails_fails_with_the_reason(engine: Engine) -> None:
    case = EvalCase.model_validate(
        {
            "id": "broken-setup",
            "request": "delete task 9",
            "category": "single",
            "expected": [{"tool": "delete_task", "arguments": {"task_id": 9}}],
            "setup": [{"tool": "complete_task", "arguments": {"task_id": 9}}],
        }
    )

    result = run_case(engine, case, run_id=new_run_id())

    assert not result.passed
    assert result.error is not None
    assert "setup call complete_task failed" in result.error
    assert result.thread_id is not None


def test_a_model_failure_is_the_cases_error(engine: Engine, vertex: FakeVertex) -> None:
    (case,) = cases("time-plain")
    vertex.error(400, "Request contains an invalid argument.")

    result = run_case(engine, case, run_id=new_run_id())

    assert not result.passed
    assert result.actual == ()
    assert result.error is not None
    assert result.error.startswith("model call failed")
    assert "invalid argument" in result.error
