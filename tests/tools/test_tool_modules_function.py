"""A tool named by `TOOL_MODULES` reaches the model inside the step function as deployed."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from tests.engine.doubles import new_thread
from tests.functions.conftest import function_env, load_function, pubsub_emulator, topic

from messagedb_agent.pubsub.envelope import encode_push
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.reading import read_thread
from messagedb_agent.tools.modules import ToolModuleError

__all__ = ["function_env", "load_function", "pubsub_emulator", "topic"]

SUBSCRIPTION = "projects/test-project/subscriptions/agent-steps-step"


def test_the_step_function_runs_a_tool_from_tool_modules(
    function_env: pytest.MonkeyPatch,
    load_function: Callable[[str], FlaskClient],
    store: MessageStore,
) -> None:
    function_env.setenv("TOOL_MODULES", "tests.tools.priority_tools")
    client = load_function("step")
    thread = new_thread(store, "/call set_priority task_id=4 level=high", owner="ada")
    body = encode_push(thread.notification, subscription=SUBSCRIPTION, message_id="1")

    response = client.post("/", json=body)

    assert response.status_code == 200
    events = read_thread(store, thread.stream_name)
    completed = [e.event for e in events if e.type == "ToolExecutionCompleted"]
    assert [c.tool_name for c in completed] == ["set_priority"]  # type: ignore[attr-defined]
    answer = events[-1].event.response_text  # type: ignore[attr-defined]
    assert 'set_priority returned {"level": "high", "owner": "ada", "task_id": 4}' in answer


@pytest.mark.parametrize(
    ("module", "problem"),
    [
        ("tests.tools.broken_tool_module", "failed while importing: RuntimeError"),
        ("tests.tools.toolless_module", "defines no @tool functions"),
    ],
)
def test_a_step_function_whose_tool_module_is_broken_does_not_start(
    function_env: pytest.MonkeyPatch,
    load_function: Callable[[str], FlaskClient],
    module: str,
    problem: str,
) -> None:
    function_env.setenv("TOOL_MODULES", module)

    with pytest.raises(ToolModuleError, match=rf"TOOL_MODULES names '{module}', which {problem}"):
        load_function("step")


def test_a_function_with_a_misspelt_tool_module_does_not_start(
    function_env: pytest.MonkeyPatch, load_function: Callable[[str], FlaskClient]
) -> None:
    function_env.setenv("TOOL_MODULES", "tests.tools.priority_toolz")

    with pytest.raises(Exception, match=r"TOOL_MODULES names 'tests\.tools\.priority_toolz'"):
        load_function("step")
