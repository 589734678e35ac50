"""Which reply answers a user message: the one whose model call could see it."""

from __future__ import annotations

from tests.projections.thread_events import ThreadEvents, call

from messagedb_agent.projections.anchors import ReplyWatch, reply_text


def _after(thread: ThreadEvents, position: int) -> ReplyWatch:
    watch = ReplyWatch(position)
    watch.feed(e for e in thread.events if e.position > position)
    return watch


def test_a_final_answer_from_a_call_that_saw_the_message_is_its_reply() -> None:
    thread = ThreadEvents()
    thread.started()
    asked = thread.user("what time is it")
    thread.respond(thread.claim(), "noon")
    reply = _after(thread, asked).reply
    assert reply is not None
    assert reply_text(reply) == "noon"


def test_an_answer_to_an_earlier_context_is_not_the_reply() -> None:
    thread = ThreadEvents()
    thread.started()
    thread.user("first")
    step = thread.claim()  # cut before the second message: the call cannot see it
    second = thread.user("second")
    thread.respond(step, "answer to first")
    assert _after(thread, second).reply is None
    thread.respond(thread.claim(), "answer to second")
    reply = _after(thread, second).reply
    assert reply is not None
    assert reply_text(reply) == "answer to second"


def test_a_response_that_asks_for_tools_is_not_yet_the_reply() -> None:
    thread = ThreadEvents()
    thread.started()
    asked = thread.user("add milk")
    thread.respond(thread.claim(), "", (call("c1", "add_task"),))
    assert _after(thread, asked).reply is None


def test_the_end_of_the_thread_answers_whatever_was_waiting() -> None:
    thread = ThreadEvents()
    thread.started()
    asked = thread.user("hello?")
    thread.complete("terminated", "This conversation has been closed.")
    reply = _after(thread, asked).reply
    assert reply is not None
    assert reply_text(reply) == "This conversation has been closed."
