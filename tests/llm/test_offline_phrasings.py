"""How people actually ask, and what the offline model does with it.

Each phrasing runs against the same small task list, through the model's whole loop; the table
says which changes (or listing) should follow. Written from everyday requests, not from the
patterns that recognise them.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.llm.task_tools import ALL_TOOLS, CONFIG, SPECS, Conversation, internal_names

from messagedb_agent.events.values import ToolCall
from messagedb_agent.llm.offline import OFFLINE_NOTE, OfflineModel
from messagedb_agent.llm.types import AssistantTurn, Message, ToolResult, UserTurn

# 1 electricity bill, 2 dentist appointment, 3 buy groceries (done), 4 call the plumber,
# 5 laundry (done)
SEEDED = ("pay the electricity bill", "dentist appointment", "buy groceries", "call the plumber")


def _conversation() -> Conversation:
    conversation = Conversation()
    conversation.tools.seed(*SEEDED, "laundry", completed=("buy groceries", "laundry"))
    conversation.tools.calls.clear()
    return conversation


Expected = list[tuple[str, dict[str, Any]]]
ADD = "add_task"
LIST = "list_tasks"
ALL: dict[str, Any] = {"status": "all"}
PENDING: dict[str, Any] = {"status": "pending"}
DONE: dict[str, Any] = {"status": "completed"}
CLEARED: Expected = [(LIST, ALL), ("delete_task", {"task_id": 3}), ("delete_task", {"task_id": 5})]

PHRASINGS: list[tuple[str, Expected]] = [
    # adding
    ("I need to pay the electricity bill", [(ADD, {"title": "pay the electricity bill"})]),
    ("Add a task to buy groceries", [(ADD, {"title": "buy groceries"})]),
    ("Don't forget to water the plants", [(ADD, {"title": "water the plants"})]),
    ("Could you add a reminder to book the flights?", [(ADD, {"title": "book the flights"})]),
    ("Put renew passport on my to-do list", [(ADD, {"title": "renew passport"})]),
    ("I have to call the bank tomorrow", [(ADD, {"title": "call the bank tomorrow"})]),
    ("Note to self: back up the laptop", [(ADD, {"title": "back up the laptop"})]),
    ("remind me to email Sarah", [(ADD, {"title": "email Sarah"})]),
    ("I should renew my library card", [(ADD, {"title": "renew my library card"})]),
    (
        "Add buy stamps and post the letter",
        [(ADD, {"title": "buy stamps"}), (ADD, {"title": "post the letter"})],
    ),
    ("add a task to buy salt and pepper", [(ADD, {"title": "buy salt and pepper"})]),
    # listing
    ("Show me what I still have to do", [(LIST, PENDING)]),
    ("How many tasks do I have?", [(LIST, ALL)]),
    ("What's on my plate today?", [(LIST, PENDING)]),
    ("What's left?", [(LIST, PENDING)]),
    ("Anything pending?", [(LIST, PENDING)]),
    ("What have I finished?", [(LIST, DONE)]),
    ("Which tasks have I completed?", [(LIST, DONE)]),
    ("Do I have anything to do today?", [(LIST, PENDING)]),
    ("I need to see my tasks", [(LIST, ALL)]),
    ("Hi! What should I do next?", [(LIST, PENDING)]),
    ("Could you please tell me what tasks I have?", [(LIST, ALL)]),
    ("show everything", [(LIST, ALL)]),
    # completing, by words or by number
    ("done with the dentist appointment", [(LIST, ALL), ("complete_task", {"task_id": 2})]),
    ("I'm done with the plumber call", [(LIST, ALL), ("complete_task", {"task_id": 4})]),
    ("I just finished the electricity bill", [(LIST, ALL), ("complete_task", {"task_id": 1})]),
    ("The dentist appointment is done", [(LIST, ALL), ("complete_task", {"task_id": 2})]),
    ("Tick off the plumber", [(LIST, ALL), ("complete_task", {"task_id": 4})]),
    ("Cross the electricity bill off my list", [(LIST, ALL), ("complete_task", {"task_id": 1})]),
    ("mark task 2 as complete", [("complete_task", {"task_id": 2})]),
    # changing
    (
        "Change the description of the electricity bill to pay online before Friday",
        [(LIST, ALL), ("update_task", {"task_id": 1, "description": "pay online before Friday"})],
    ),
    (
        "Add a note to the dentist appointment: bring insurance card",
        [(LIST, ALL), ("update_task", {"task_id": 2, "description": "bring insurance card"})],
    ),
    (
        "update task 4's description to ask about the boiler",
        [("update_task", {"task_id": 4, "description": "ask about the boiler"})],
    ),
    (
        "rename the plumber task to call the electrician",
        [(LIST, ALL), ("update_task", {"task_id": 4, "title": "call the electrician"})],
    ),
    # flagging what matters
    (
        "mark the dentist appointment as important",
        [(LIST, ALL), ("update_task", {"task_id": 2, "important": True})],
    ),
    ("Task 4 is urgent", [("update_task", {"task_id": 4, "important": True})]),
    (
        "star the electricity bill",
        [(LIST, ALL), ("update_task", {"task_id": 1, "important": True})],
    ),
    (
        "the plumber is not important any more",
        [(LIST, ALL), ("update_task", {"task_id": 4, "important": False})],
    ),
    (
        "show my tasks and mark the dentist one high priority",
        [(LIST, ALL), ("update_task", {"task_id": 2, "important": True}), (LIST, ALL)],
    ),
    # deleting one, or every completed one
    ("Please remove the dentist task", [(LIST, ALL), ("delete_task", {"task_id": 2})]),
    ("Forget about the plumber", [(LIST, ALL), ("delete_task", {"task_id": 4})]),
    (
        "I don't need to call the plumber anymore",
        [(LIST, ALL), ("delete_task", {"task_id": 4})],
    ),
    ("Take the electricity bill off my list", [(LIST, ALL), ("delete_task", {"task_id": 1})]),
    ("Get rid of everything I've completed", CLEARED),
    ("delete completed tasks", CLEARED),
    ("Clear out the finished ones", CLEARED),
    ("Remove the tasks that are done", CLEARED),
    ("list all tasks then delete completed ones", [*CLEARED, (LIST, ALL)]),
    # several at once, by number
    ("delete tasks 1 and 4", [("delete_task", {"task_id": 1}), ("delete_task", {"task_id": 4})]),
    (
        "mark tasks 1 and 2 as done",
        [("complete_task", {"task_id": 1}), ("complete_task", {"task_id": 2})],
    ),
    ("check off number 2 for me", [("complete_task", {"task_id": 2})]),
    (
        "change the title of task 4 to call the electrician",
        [("update_task", {"task_id": 4, "title": "call the electrician"})],
    ),
    ("jot down 'oil change' as a task please", [(ADD, {"title": "oil change"})]),
    (
        "put these on my list: pay rent, book a vet appointment, and buy a birthday card",
        [
            (ADD, {"title": "pay rent"}),
            (ADD, {"title": "book a vet appointment"}),
            (ADD, {"title": "buy a birthday card"}),
        ],
    ),
    (
        "finish task 2 and then show me what's left",
        [("complete_task", {"task_id": 2}), (LIST, PENDING)],
    ),
    (
        "I paid the electricity bill, you can check that off",
        [(LIST, ALL), ("complete_task", {"task_id": 1})],
    ),
    (
        "I called the plumber, check it off and add a task to buy a new boiler",
        [(LIST, ALL), (ADD, {"title": "buy a new boiler"}), ("complete_task", {"task_id": 4})],
    ),
    # the other tools, asked for in passing
    ("What time is it in London", [("get_current_time", {"timezone": "Europe/London"})]),
    ("what day of the week is it today?", [("get_current_time", {})]),
    (
        "add 'submit expense report' and tell me what time it is",
        [(ADD, {"title": "submit expense report"}), ("get_current_time", {})],
    ),
    ("what's the square root of 144?", [("calculate", {"expression": "sqrt(144)"})]),
    ("what's 15% of 80?", [("calculate", {"expression": "15/100*80"})]),
]


@pytest.mark.parametrize(("text", "expected"), PHRASINGS)
def test_a_phrasing_leads_to_its_calls(text: str, expected: Expected) -> None:
    conversation = _conversation()

    conversation.say(text)

    assert conversation.tools.calls == expected


def test_the_table_is_broad() -> None:
    assert len(PHRASINGS) >= 40


@pytest.mark.parametrize(("text", "expected"), PHRASINGS)
def test_a_reply_names_nothing_internal(text: str, expected: Expected) -> None:
    reply = _conversation().say(text)

    assert internal_names(text, reply) == []


def test_how_many_answers_with_the_count() -> None:
    reply = _conversation().say("How many tasks do I have?")

    assert "You have 5 tasks:" in reply


def test_deleting_completed_tasks_says_what_went() -> None:
    conversation = _conversation()

    reply = conversation.say("Get rid of everything I've completed")

    assert "Deleted 2 completed tasks: task #3 “buy groceries”, task #5 “laundry”." in reply
    assert sorted(conversation.tools.tasks) == [1, 2, 4]


# -- tool errors, as the engine reports them: written for a model, read here for a user ------


def _failed(call: ToolCall, message: str, kind: str) -> ToolResult:
    return ToolResult(call.id, call.name, {"error": message, "kind": kind}, is_error=True)


def _answer_after_failure(text: str, message: str, kind: str) -> str:
    messages: list[Message] = [UserTurn(text)]
    model = OfflineModel()
    first = model.call(messages, ALL_TOOLS, CONFIG)
    messages.append(AssistantTurn("", first.tool_calls))
    messages.extend(_failed(call, message, kind) for call in first.tool_calls)
    return model.call(messages, ALL_TOOLS, CONFIG).text.removeprefix(OFFLINE_NOTE).strip()


ERRORS = [
    (
        "delete task 42",
        "I don't see task 42 in the user's list (task ids: 1, 2). "
        "Call list_tasks to see the current tasks.",
        "invalid_arguments",
        "I don't see task #42 in your list",
    ),
    (
        "add a task to " + "b" * 5000,
        "add_task: 'title' must be at most 500 characters (got 5000): " + "b" * 5000,
        "invalid_arguments",
        "that task name is too long or not valid",
    ),
    (
        "add a task to buy milk",
        "The task list is unavailable right now; try again shortly.",
        "transient",
        "please try again in a moment",
    ),
    ("show my tasks", "list_tasks did not finish within 10 s.", "timeout", "try again"),
    ("mark task 1 done", "There is no signed-in user to act for.", "forbidden", "not allowed"),
    (
        "rename task 1 to x",
        "update_task failed: KeyError: 'task_id'",
        "exception",
        "something went wrong",
    ),
    ("what is 1/0", "calculate: division by zero", "invalid_arguments", "doesn't look right"),
]


@pytest.mark.parametrize(("text", "message", "kind", "said"), ERRORS)
def test_a_tool_error_is_told_in_the_users_terms(
    text: str, message: str, kind: str, said: str
) -> None:
    answer = _answer_after_failure(text, message, kind)

    assert said in answer
    assert internal_names(text, answer) == []
    assert "Call " not in answer
    assert len(answer) < 200


def test_a_failed_lookup_is_told_in_the_users_terms() -> None:
    answer = _answer_after_failure(
        "mark the milk done", "list_tasks: the database said no", "exception"
    )

    assert answer == (
        "I couldn't read your tasks to find “milk”: something went wrong; "
        "please try again in a moment."
    )


# -- help when nothing is understood ---------------------------------------------------------


def test_full_help_comes_once_then_a_short_line() -> None:
    conversation = Conversation()

    first = conversation.say("tell me a joke")
    second = conversation.say("sing me a song")
    third = conversation.say("what is love?")

    assert "add a task to buy milk" in first
    assert second == third == "Sorry, I didn't get that. Say “help” to see what I can do."


def test_asking_for_help_shows_it_again() -> None:
    conversation = Conversation()
    conversation.say("tell me a joke")

    again = conversation.say("help")

    assert "add a task to buy milk" in again


def test_help_is_short() -> None:
    answer = Conversation(specs=list(SPECS.values())).say("tell me a joke")

    assert len(answer.removeprefix(OFFLINE_NOTE)) < 400
    # the examples are words to type: "echo hello" is one of them, not an internal name
    assert internal_names("tell me a joke echo", answer) == []


def test_a_long_message_it_does_not_understand_is_not_echoed_back() -> None:
    conversation = Conversation()
    text = "add a task to buy milk and " + "blah " * 1000

    answer = conversation.say(text)

    assert len(answer) < 300


# -- "it": the task the conversation just dealt with ------------------------------------------


@pytest.mark.parametrize(
    ("follow_up", "call"),
    [
        ("mark it as done", ("complete_task", {"task_id": 6})),
        ("ok that one's done now", ("complete_task", {"task_id": 6})),
        ("change it to 'call the bank about the mortgage'", ("update_task", {"task_id": 6})),
        ("delete it", ("delete_task", {"task_id": 6})),
    ],
)
def test_it_means_the_task_just_added(follow_up: str, call: tuple[str, dict[str, Any]]) -> None:
    conversation = _conversation()
    conversation.say("add a task to call the bank")

    conversation.say(follow_up)

    name, arguments = conversation.tools.calls[-1]
    assert name == call[0]
    assert arguments.items() >= call[1].items()


def test_it_waits_for_the_task_added_in_the_same_message() -> None:
    conversation = _conversation()

    answer = conversation.say("add a task to buy bread and then mark it as done")

    assert conversation.tools.calls == [
        (ADD, {"title": "buy bread"}),
        ("complete_task", {"task_id": 6}),
    ]
    assert "Marked task #6 “buy bread” as done." in answer


def test_it_with_nothing_to_refer_to_asks_which_task() -> None:
    answer = Conversation().say("mark it done")

    assert "not sure which task" in answer
