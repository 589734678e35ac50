"""Cancelling a running turn from the command line, against the real Message DB: a turn that
waits for an approval is stopped, its approval withdrawn, and the thread answers the next
message; cancelling when nothing runs says so and writes nothing."""

from __future__ import annotations

from tests.test_cli_approvals import env, run, thread_of, waiting, waiting_call

__all__ = ["env", "waiting"]  # fixtures, shared with the approval commands' tests


def test_cancel_stops_a_waiting_turn_and_the_next_message_is_answered(
    env: dict[str, str], waiting: tuple[str, str, str]
) -> None:
    thread, call, _ = waiting
    output = run(env, "cancel", thread, "--reason", "changed my mind")
    assert f"cancelled the running turn of {thread}" in output
    shown = run(env, "show", thread)
    assert "waiting for your approval" not in shown
    assert "cancelled by" in shown
    refused = run(env, "show", thread)
    assert call in refused  # the request stays in the transcript
    answered = run(env, "continue", thread, "what are my tasks?")
    assert "walk the dog" in answered  # never deleted


def test_cancel_when_nothing_runs_writes_nothing(env: dict[str, str]) -> None:
    thread = thread_of(run(env, "start", "what is 2+2?"))
    before = run(env, "show", thread, "--events")
    output = run(env, "cancel", thread)
    assert f"nothing is running in {thread}; nothing to cancel" in output
    assert run(env, "show", thread, "--events") == before


def test_cancel_help_has_an_example(env: dict[str, str]) -> None:
    assert "messagedb-agent cancel" in run(env, "cancel", "--help")


_ = waiting_call  # imported for its fixture module
