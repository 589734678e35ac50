"""The plain requests the offline model recognises, in some variety of phrasing."""

from __future__ import annotations

import pytest

from messagedb_agent.llm.offline_requests import (
    AddTask,
    Calculate,
    CompleteTask,
    CurrentTime,
    DeleteCompleted,
    DeleteTask,
    DescribeTask,
    Echo,
    ListTasks,
    RenameTask,
    Request,
    TaskRef,
    parse_requests,
)

MILK = TaskRef("milk")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("add a task to buy milk", [AddTask("buy milk")]),
        ("Add a task: Buy milk.", [AddTask("Buy milk")]),
        ("please create a new task called 'call the bank'", [AddTask("call the bank")]),
        ("add milk to my list", [AddTask("milk")]),
        ("remind me to call mom", [AddTask("call mom")]),
        ("Remind me to call Mom!", [AddTask("call Mom")]),
        ("todo: water the plants", [AddTask("water the plants")]),
        (
            "add a task to buy milk with description 2 liters, skimmed",
            [AddTask("buy milk", "2 liters, skimmed")],
        ),
        ("add a task to write notes for the meeting", [AddTask("write notes for the meeting")]),
        ("what are my tasks", [ListTasks("all")]),
        ("list my tasks", [ListTasks("all")]),
        ("Hi, can you show me my to-do list please?", [ListTasks("all")]),
        ("show pending tasks", [ListTasks("pending")]),
        ("what do I still have to do?", [ListTasks("pending")]),
        ("which tasks are done", [ListTasks("completed")]),
        ("mark milk done", [CompleteTask(MILK)]),
        ("mark milk as completed", [CompleteTask(MILK)]),
        ("complete the milk task", [CompleteTask(MILK)]),
        ("check off milk", [CompleteTask(MILK)]),
        ("I finished milk", [CompleteTask(MILK)]),
        ("mark task #3 as done", [CompleteTask(TaskRef("task #3", 3))]),
        ("delete the milk task", [DeleteTask(MILK)]),
        ("remove milk from my list", [DeleteTask(MILK)]),
        ("rename milk to oat milk", [RenameTask(MILK, "oat milk")]),
        ("change the milk task to oat milk", [RenameTask(MILK, "oat milk")]),
        ("what time is it", [CurrentTime()]),
        ("What's the time?", [CurrentTime()]),
        ("what time is it in Europe/Paris?", [CurrentTime("Europe/Paris")]),
        ("what is today's date", [CurrentTime()]),
        ("what is 12*(3+4)", [Calculate("12*(3+4)")]),
        ("What's 12 * (3 + 4)?", [Calculate("12 * (3 + 4)")]),
        ("calculate 2^10", [Calculate("2^10")]),
        ("what is 7 times 6", [Calculate("7 * 6")]),
        ("how much is 10 divided by 4", [Calculate("10 / 4")]),
        ("echo hello", [Echo("hello")]),
        ("echo Hello, World!", [Echo("Hello, World!")]),
    ],
)
def test_single_requests(text: str, expected: list[Request]) -> None:
    assert parse_requests(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "add a task to buy milk and add a task to walk the dog",
            [AddTask("buy milk"), AddTask("walk the dog")],
        ),
        ("add tasks to buy milk and walk the dog", [AddTask("buy milk"), AddTask("walk the dog")]),
        (
            "mark milk done and delete the dog task",
            [CompleteTask(MILK), DeleteTask(TaskRef("dog"))],
        ),
        (
            "what time is it; then calculate 1+1",
            [CurrentTime(), Calculate("1+1")],
        ),
        ("add milk to my list and then show my tasks", [AddTask("milk"), ListTasks("all")]),
    ],
)
def test_requests_joined_by_and_are_all_recognised(text: str, expected: list[Request]) -> None:
    assert parse_requests(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("add a task to buy salt and pepper", [AddTask("buy salt and pepper")]),
        ("echo black and white", [Echo("black and white")]),
        ("rename milk to milk and honey", [RenameTask(MILK, "milk and honey")]),
    ],
)
def test_an_and_inside_a_request_stays_in_it(text: str, expected: list[Request]) -> None:
    assert parse_requests(text) == expected


@pytest.mark.parametrize(
    "text", ["hello", "what is the meaning of life", "tell me a joke", "", "what is love?"]
)
def test_anything_else_is_no_request(text: str) -> None:
    assert parse_requests(text) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("delete completed tasks", [DeleteCompleted()]),
        ("Get rid of everything I've completed", [DeleteCompleted()]),
        ("delete the completed milk task", [DeleteTask(TaskRef("completed milk"))]),
        (
            "change the description of milk to 2 liters",
            [DescribeTask(MILK, "2 liters")],
        ),
        ("how many tasks do I have", [ListTasks("all", count=True)]),
        ("how many are left", [ListTasks("pending", count=True)]),
        (
            "add buy stamps and post the letter",
            [AddTask("buy stamps"), AddTask("post the letter")],
        ),
        ("I need to pay the electricity bill", [AddTask("pay the electricity bill")]),
        ("I need to see my tasks", [ListTasks("all")]),
        ("list my tasks then delete completed ones", [ListTasks("all"), DeleteCompleted()]),
    ],
)
def test_requests_said_as_people_say_them(text: str, expected: list[Request]) -> None:
    assert parse_requests(text) == expected
