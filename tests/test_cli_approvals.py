"""Approving and rejecting a waiting tool call from the command line, against the real Message
DB: a turn stops before `delete_task` (it requires approval by default) and says how to decide;
`approve` runs the call once and prints the reply, `reject` leads to a reply that says why not."""

from __future__ import annotations

import re
import uuid

import pytest
from tests.test_cli_threads import env, run, runner, thread_of
from typer.testing import Result

from messagedb_agent.cli import app

__all__ = ["env", "run", "thread_of"]  # shared with the other command-line tests


def invoke(env: dict[str, str], *args: str) -> Result:
    return runner.invoke(app, list(args), env=env)


def waiting_call(output: str) -> str:
    found = re.search(r"waiting for your approval: delete_task \{.*\} \(call (\S+?)\)", output)
    assert found, output
    return found.group(1)


@pytest.fixture
def waiting(env: dict[str, str]) -> tuple[str, str, str]:
    """Two tasks, then "delete task 2": the thread, the waiting call and what `continue` printed."""
    thread = thread_of(run(env, "start", "add a task to buy milk and add a task to walk the dog"))
    output = run(env, "continue", thread, "delete task 2")
    return thread, waiting_call(output), output


def test_a_turn_stops_at_the_approval_and_says_how_to_decide(
    waiting: tuple[str, str, str],
) -> None:
    thread, call, output = waiting

    assert f'waiting for your approval: delete_task {{"task_id": 2}} (call {call})' in output
    assert f"messagedb-agent approve {thread} {call}" in output
    assert f"messagedb-agent reject {thread} {call}" in output
    assert f"asks approval to run delete_task(task_id=2) (call {call})" in output
    assert "Deleted" not in output


def test_start_stops_at_the_approval_too(env: dict[str, str]) -> None:
    output = run(env, "start", "delete task 2")

    thread = thread_of(output)
    call = waiting_call(output)
    assert f"messagedb-agent approve {thread} {call}" in output


def test_show_lists_the_pending_approval(
    env: dict[str, str], waiting: tuple[str, str, str]
) -> None:
    thread, call, _ = waiting

    shown = run(env, "show", thread)

    assert f"(call {call})" in shown
    assert f"messagedb-agent approve {thread} {call}" in shown
    assert f"messagedb-agent reject {thread} {call}" in shown


def test_approve_runs_the_deletion_once_and_prints_the_reply(
    env: dict[str, str], waiting: tuple[str, str, str]
) -> None:
    thread, call, _ = waiting

    approved = run(env, "approve", thread, call)

    assert "✓ delete_task(task_id=2) approved by " + env["LOCAL_USER"] in approved
    assert "⚙ delete_task(task_id=2) →" in approved
    assert "Deleted task #2 “walk the dog”." in approved
    assert "waiting for your approval" not in approved
    listed = run(env, "continue", thread, "what are my tasks")
    assert "buy milk" in listed
    assert "walk the dog" not in listed
    raw = run(env, "show", thread, "--events")
    assert raw.count("ToolExecutionCompleted       delete_task") == 1
    assert raw.count("ToolApprovalGranted") == 1
    assert "waiting for your approval" not in run(env, "show", thread)


def test_approving_again_says_it_was_already_approved(
    env: dict[str, str], waiting: tuple[str, str, str]
) -> None:
    thread, call, _ = waiting
    run(env, "approve", thread, call)

    again = invoke(env, "approve", thread, call)

    assert again.exit_code == 0, again.output
    assert f"the call {call} was already approved" in again.output
    assert "Deleted" not in again.output  # nothing ran again, so nothing new is printed
    raw = run(env, "show", thread, "--events")
    assert raw.count("ToolApprovalGranted") == 1
    assert raw.count("ToolExecutionCompleted       delete_task") == 1


def test_reject_with_a_reason_leads_to_a_reply_that_it_was_not_deleted(
    env: dict[str, str], waiting: tuple[str, str, str]
) -> None:
    thread, call, _ = waiting

    rejected = run(env, "reject", thread, call, "--reason", "I still need it")

    user = env["LOCAL_USER"]
    assert f"✗ delete_task(task_id=2) declined by {user}: I still need it" in rejected
    assert "OK, I didn't delete “task 2”: the user declined: I still need it." in rejected
    assert "⚙ delete_task" not in rejected
    listed = run(env, "continue", thread, "what are my tasks")
    assert "walk the dog" in listed


def test_rejecting_again_says_it_was_already_declined(
    env: dict[str, str], waiting: tuple[str, str, str]
) -> None:
    thread, call, _ = waiting
    run(env, "reject", thread, call)

    again = invoke(env, "reject", thread, call)

    assert again.exit_code == 0, again.output
    assert f"the call {call} was already declined" in again.output


def test_approve_after_reject_is_refused_in_one_line(
    env: dict[str, str], waiting: tuple[str, str, str]
) -> None:
    thread, call, _ = waiting
    run(env, "reject", thread, call, "--reason", "no")

    refused = invoke(env, "approve", thread, call)

    assert refused.exit_code == 1
    assert (
        refused.stderr.strip()
        == f"error: The call {call} was already declined; that decision stands."
    )
    assert "Traceback" not in refused.output
    assert "ToolApprovalGranted" not in run(env, "show", thread, "--events")


@pytest.mark.parametrize("command", ["approve", "reject"])
def test_an_unknown_call_is_refused_in_one_line(
    env: dict[str, str], waiting: tuple[str, str, str], command: str
) -> None:
    thread, _, _ = waiting

    refused = invoke(env, command, thread, "c99")

    assert refused.exit_code == 1
    assert refused.stderr.strip() == (
        "error: Nothing in this conversation is waiting for approval as c99."
    )
    assert refused.stdout == ""


def test_an_unknown_thread_is_refused_in_one_line(env: dict[str, str]) -> None:
    missing = str(uuid.uuid4())

    refused = invoke(env, "approve", missing, "c0")

    assert refused.exit_code == 1
    assert refused.stderr.strip() == f"error: I can't find the conversation {missing}."


def test_another_users_approval_is_not_theirs_to_decide(
    env: dict[str, str], waiting: tuple[str, str, str]
) -> None:
    thread, call, _ = waiting

    refused = invoke({**env, "LOCAL_USER": "someone-else"}, "approve", thread, call)

    assert refused.exit_code == 1
    assert refused.stderr.startswith("error: I can't find the conversation")
    assert "ToolApprovalGranted" not in run(env, "show", thread, "--events")


def test_a_reason_too_long_is_refused_before_anything_is_written(
    env: dict[str, str], waiting: tuple[str, str, str]
) -> None:
    thread, call, _ = waiting

    refused = invoke(env, "reject", thread, call, "--reason", "x" * 501)

    assert refused.exit_code == 1
    assert refused.stderr.startswith("error: --reason is too long")
    assert "ToolApprovalDenied" not in run(env, "show", thread, "--events")


def test_approve_and_reject_have_help_with_an_example() -> None:
    for command in ("approve", "reject"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0
        assert f"{command} [OPTIONS] THREAD CALL" in result.output
        assert f"messagedb-agent {command} 9d2c6f0e-" in result.output
        assert "--reason" in result.output
