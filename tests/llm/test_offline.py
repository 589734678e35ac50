"""The offline stand-in: plain requests become tool calls, results become answers, always alike."""

from __future__ import annotations

from typing import Any

import pytest
from tests.llm.task_tools import ALL_TOOLS, CONFIG, SPECS, Conversation, internal_names

from messagedb_agent.events.values import ToolCall
from messagedb_agent.llm.offline import (
    OFFLINE_MODEL_NAME,
    OFFLINE_NOTE,
    OfflineModel,
    parse_call,
)
from messagedb_agent.llm.types import AssistantTurn, Message, ToolResult, UserTurn


def _first_calls(text: str) -> list[tuple[str, dict[str, Any]]]:
    response = OfflineModel().call([UserTurn(text)], ALL_TOOLS, CONFIG)
    return [(call.name, call.arguments) for call in response.tool_calls]


@pytest.mark.parametrize(
    ("text", "calls"),
    [
        ("add a task to buy milk", [("add_task", {"title": "buy milk"})]),
        ("remind me to call mom", [("add_task", {"title": "call mom"})]),
        (
            "add a task to pay rent with description before Friday",
            [("add_task", {"title": "pay rent", "description": "before Friday"})],
        ),
        ("what are my tasks", [("list_tasks", {"status": "all"})]),
        ("list my tasks", [("list_tasks", {"status": "all"})]),
        ("show pending tasks", [("list_tasks", {"status": "pending"})]),
        ("show my completed tasks", [("list_tasks", {"status": "completed"})]),
        ("mark milk done", [("list_tasks", {"status": "all"})]),
        ("delete the milk task", [("list_tasks", {"status": "all"})]),
        ("rename milk to oat milk", [("list_tasks", {"status": "all"})]),
        ("mark task 3 done", [("complete_task", {"task_id": 3})]),
        ("what time is it", [("get_current_time", {})]),
        ("what time is it in Asia/Tokyo", [("get_current_time", {"timezone": "Asia/Tokyo"})]),
        ("what is 12*(3+4)", [("calculate", {"expression": "12*(3+4)"})]),
        ("calculate 2^10", [("calculate", {"expression": "2^10"})]),
        ("echo hello", [("echo", {"message": "hello"})]),
    ],
)
def test_a_plain_request_becomes_its_tool_call(
    text: str, calls: list[tuple[str, dict[str, Any]]]
) -> None:
    assert _first_calls(text) == calls


def test_tool_calls_are_labelled_and_finish_with_tool_calls() -> None:
    response = OfflineModel().call([UserTurn("echo hi")], ALL_TOOLS, CONFIG)

    assert response.model_name == OFFLINE_MODEL_NAME
    assert response.finish_reason == "tool_calls"
    assert response.text == ""
    assert response.token_usage.input_tokens == 2
    assert response.token_usage.output_tokens > 0


def test_requests_joined_by_and_are_parallel_calls_in_one_response() -> None:
    conversation = Conversation()

    answer = conversation.say("add a task to buy milk and add a task to walk the dog")

    first = conversation.responses[0]
    assert [(c.name, c.arguments) for c in first.tool_calls] == [
        ("add_task", {"title": "buy milk"}),
        ("add_task", {"title": "walk the dog"}),
    ]
    assert len({c.id for c in first.tool_calls}) == 2
    assert len(conversation.responses) == 2
    assert "task #1 “buy milk”" in answer
    assert "task #2 “walk the dog”" in answer


def test_the_answer_is_read_from_the_tool_results() -> None:
    conversation = Conversation()
    conversation.tools.seed("buy milk", "walk the dog", completed=("walk the dog",))

    answer = conversation.say("what are my tasks")

    assert "- [ ] #1 buy milk" in answer
    assert "- [x] #2 walk the dog" in answer
    final = conversation.responses[-1]
    assert (final.finish_reason, final.tool_calls) == ("stop", ())


def test_completing_by_name_lists_first_then_completes_the_best_match() -> None:
    conversation = Conversation()
    conversation.tools.seed("buy oat milk", "buy milk", "walk the dog")

    answer = conversation.say("mark milk done")

    assert conversation.tools.calls == [
        ("list_tasks", {"status": "all"}),
        ("complete_task", {"task_id": 2}),
    ]
    assert [len(r.tool_calls) for r in conversation.responses] == [1, 1, 0]
    assert conversation.tools.tasks[2]["completed"] is True
    assert "Marked task #2 “buy milk” as done." in answer


def test_completing_prefers_a_task_that_is_still_pending() -> None:
    conversation = Conversation()
    conversation.tools.seed("call mom", "call mom", completed=())
    conversation.tools.tasks[1]["completed"] = True

    conversation.say("complete the call mom task")

    assert conversation.tools.calls[-1] == ("complete_task", {"task_id": 2})


def test_deleting_by_name_chains_through_the_list() -> None:
    conversation = Conversation()
    conversation.tools.seed("buy milk", "walk the dog")

    answer = conversation.say("delete the dog task")

    assert conversation.tools.calls[-1] == ("delete_task", {"task_id": 2})
    assert list(conversation.tools.tasks) == [1]
    assert "Deleted task #2 “walk the dog”." in answer


def test_renaming_by_name_chains_through_the_list() -> None:
    conversation = Conversation()
    conversation.tools.seed("buy milk")

    answer = conversation.say("rename milk to oat milk")

    assert conversation.tools.calls[-1] == ("update_task", {"task_id": 1, "title": "oat milk"})
    assert conversation.tools.tasks[1]["title"] == "oat milk"
    assert "Renamed task #1 to “oat milk”." in answer


def test_several_changes_by_name_share_one_lookup() -> None:
    conversation = Conversation()
    conversation.tools.seed("buy milk", "walk the dog")

    answer = conversation.say("mark milk done and delete the dog task")

    calls = [[(c.name, c.arguments) for c in r.tool_calls] for r in conversation.responses]
    assert calls == [
        [("list_tasks", {"status": "all"})],
        [("complete_task", {"task_id": 1}), ("delete_task", {"task_id": 2})],
        [],
    ]
    assert "Marked task #1 “buy milk” as done." in answer
    assert "Deleted task #2 “walk the dog”." in answer


def test_a_listing_asked_with_a_change_shows_the_change() -> None:
    conversation = Conversation()

    answer = conversation.say("add a task to buy bread and show my tasks")

    calls = [[c.name for c in r.tool_calls] for r in conversation.responses]
    assert calls == [["add_task"], ["list_tasks"], []]
    assert "- [ ] #1 buy bread" in answer


def test_a_task_that_matches_nothing_is_explained() -> None:
    conversation = Conversation()
    conversation.tools.seed("buy milk")

    answer = conversation.say("complete the pizza task")

    assert [name for name, _ in conversation.tools.calls][-1] == "list_tasks"
    assert "couldn't find a task matching “pizza”" in answer
    assert "“buy milk”" in answer


def test_tool_errors_become_a_friendly_explanation() -> None:
    conversation = Conversation()
    conversation.tools.failing.add("add_task")

    answer = conversation.say("add a task to buy milk")

    assert answer.endswith("I couldn't add “buy milk”: add_task is out of order.")


def test_a_failed_lookup_is_explained() -> None:
    conversation = Conversation()
    conversation.tools.failing.add("list_tasks")

    answer = conversation.say("mark milk done")

    assert "couldn't read your tasks" in answer
    assert "list_tasks is out of order" in answer
    assert "complete_task" not in [name for name, _ in conversation.tools.calls]


def test_other_requests_answer_from_their_results() -> None:
    conversation = Conversation()

    assert conversation.say("what is 12*(3+4)").endswith("12*(3+4) = 84")
    assert conversation.say("calculate 2^10") == "2^10 = 1024"
    assert conversation.say("what time is it") == "It is 15:09 on Friday, 14 March 2025 (UTC)."
    assert conversation.say("echo hello there") == "hello there"


def test_only_the_first_answer_of_a_thread_says_it_is_the_stand_in() -> None:
    conversation = Conversation()

    first = conversation.say("echo one")
    second = conversation.say("echo two")

    assert first == f"{OFFLINE_NOTE}\none"
    assert second == "two"


def test_an_unknown_request_gets_help_listing_only_the_tools_given() -> None:
    conversation = Conversation(specs=[SPECS["add_task"], SPECS["echo"]])

    answer = conversation.say("tell me a joke")

    assert len(conversation.responses) == 1
    assert conversation.responses[0].tool_calls == ()
    assert "add a task to buy milk" in answer
    assert "echo hello" in answer
    assert "what time is it" not in answer
    assert "list my tasks" not in answer


def test_a_request_whose_tool_is_missing_is_not_called() -> None:
    conversation = Conversation(specs=[SPECS["echo"]])

    answer = conversation.say("what time is it and echo hi")

    assert conversation.tools.calls == [("echo", {"message": "hi"})]
    assert "I can't tell the time here: that isn't available in this setup." in answer
    assert internal_names("what time is it and echo hi", answer) == []


def test_with_no_tools_at_all_it_says_so() -> None:
    response = OfflineModel().call([UserTurn("add a task to buy milk")], [], CONFIG)

    assert response.tool_calls == ()
    assert "I can't add “buy milk” here: that isn't available in this setup." in response.text
    assert internal_names("add a task to buy milk", response.text) == []


def test_a_message_sent_while_tools_ran_is_answered_with_the_first() -> None:
    conversation = Conversation()
    conversation.messages.append(UserTurn("add a task to buy milk"))
    conversation.run_calls(conversation.step())
    conversation.messages.append(UserTurn("echo also this"))

    response = conversation.step()
    assert [(c.name, c.arguments) for c in response.tool_calls] == [
        ("echo", {"message": "also this"})
    ]
    conversation.run_calls(response)
    answer = conversation.step().text

    assert "Added task #1 “buy milk”." in answer
    assert "also this" in answer


def test_call_ids_stay_unique_across_a_thread() -> None:
    conversation = Conversation()

    conversation.say("echo one")
    conversation.say("echo one")

    ids = [call.id for r in conversation.responses for call in r.tool_calls]
    assert len(ids) == 2
    assert len(set(ids)) == 2


def test_results_of_calls_it_did_not_make_are_summarised_without_internal_names() -> None:
    call = ToolCall(id="toolu_abc", name="echo", arguments={"message": "x"})
    messages: list[Message] = [
        UserTurn("say x"),
        AssistantTurn("", (call,)),
        ToolResult("toolu_abc", "echo", {"message": "x"}),
    ]

    response = OfflineModel().call(messages, ALL_TOOLS, CONFIG)

    assert response.tool_calls == ()
    assert response.text.endswith('Here is what I found:\n- {"message": "x"}')
    assert internal_names("say x", response.text) == []


def test_an_answered_thread_gets_no_new_calls() -> None:
    messages: list[Message] = [UserTurn("echo hi"), AssistantTurn("hi")]

    response = OfflineModel().call(messages, ALL_TOOLS, CONFIG)

    assert response.tool_calls == ()
    assert response.text == "Is there anything else I can do for you?"


def test_the_same_conversation_always_gets_the_same_response() -> None:
    def run() -> list[Any]:
        conversation = Conversation()
        conversation.tools.seed("buy milk")
        conversation.say("add a task to walk the dog and mark milk done and what time is it")
        conversation.say("hello")
        return conversation.responses

    first, second = run(), run()

    assert first == second
    assert len(first) == 4
    messages: list[Message] = [UserTurn("mark milk done")]
    assert OfflineModel().call(messages, ALL_TOOLS, CONFIG) == OfflineModel().call(
        list(messages), list(ALL_TOOLS), CONFIG
    )


# -- `/call TOOL key=value ...` ----------------------------------------------------------------


def test_a_call_command_calls_that_tool_with_json_or_text_values() -> None:
    response = OfflineModel().call(
        [UserTurn("/call add_task title='buy oat milk' description=\"7\"")], ALL_TOOLS, CONFIG
    )

    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [
        ("explicit_1_add_task", "add_task", {"title": "buy oat milk", "description": 7})
    ]


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("/call echo", ("echo", {})),
        (
            "/call t n=3 on=true xs=[1,2] s='\"3\"' w=hello",
            ("t", {"n": 3, "on": True, "xs": [1, 2], "s": "3", "w": "hello"}),
        ),
        ("/call t note='a=b c'", ("t", {"note": "a=b c"})),
    ],
)
def test_call_arguments_are_json_when_they_parse_and_text_otherwise(
    text: str, parsed: tuple[str, dict[str, Any]]
) -> None:
    assert parse_call(text) == parsed


def test_a_called_tool_s_result_is_reported() -> None:
    conversation = Conversation()

    answer = conversation.say("/call complete_task task_id=1")
    assert conversation.tools.calls == [("complete_task", {"task_id": 1})]
    assert answer.startswith(OFFLINE_NOTE)
    assert "complete_task failed:" in answer  # no task 1 yet

    conversation.tools.seed("buy milk")
    answer = conversation.say("/call list_tasks status=pending")
    assert answer == (
        'list_tasks returned {"tasks": [{"completed": false, "description": null, '
        '"id": 1, "important": false, "title": "buy milk"}]}'
    )
    assert conversation.tools.calls[-1] == ("list_tasks", {"status": "pending"})


def test_an_unknown_tool_is_answered_with_the_tools_there_are() -> None:
    response = OfflineModel().call([UserTurn("/call set_priority task_id=1")], ALL_TOOLS, CONFIG)

    assert response.tool_calls == ()
    assert "There is no tool named “set_priority” here." in response.text
    assert "add_task, calculate, complete_task" in response.text


@pytest.mark.parametrize("text", ["/call", "/call echo hello", "/call echo message='open"])
def test_a_malformed_call_is_answered_with_the_syntax(text: str) -> None:
    response = OfflineModel().call([UserTurn(text)], ALL_TOOLS, CONFIG)

    assert response.tool_calls == ()
    assert "/call TOOL key=value" in response.text


def test_after_a_call_plain_requests_are_read_as_before() -> None:
    conversation = Conversation()
    conversation.say("/call echo message=hi")

    assert "Added task #1" in conversation.say("add a task to buy milk")
    assert conversation.tools.calls == [
        ("echo", {"message": "hi"}),
        ("add_task", {"title": "buy milk"}),
    ]


def test_words_that_only_start_like_the_command_are_plain_requests() -> None:
    assert _first_calls("/calling echo hi") == []
