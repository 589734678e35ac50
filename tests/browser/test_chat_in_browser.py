"""The web chat at /ui/, driven in headless Chromium against the running local stack.

Every check goes through the page as a person would use it (sign in, type, click); the API is
read only to compare: what the page shows must be what `GET /v1/threads/{id}` says.
"""

from __future__ import annotations

import os
import re

import pytest
from playwright.sync_api import Page, expect
from tests.browser.chat_page import (
    WATCH_GROWTH,
    event_row,
    eventually,
    send,
    settled,
    shown,
    sign_in,
    thread_id,
    transcript,
)
from tests.browser.conftest import CHROMIUM, Chat

if CHROMIUM is None and not os.environ.get("CI"):
    pytest.skip(
        "no `chromium` on PATH (Debian: apt-get install chromium; .ci/run installs it in CI)",
        allow_module_level=True,
    )

MILK = "add a task to buy milk"
LONG = (
    "add a task to buy milk and add a task to walk the dog and add a task to call mum, "
    "then list my tasks"
)
STREAMED = "add a task to walk the dog and add a task to call mum, then list my tasks"
FINAL_TOOL_STATUS = re.compile(r"^(completed|failed|declined|in_doubt)$")


def test_a_reply_streams_in_and_its_tool_call_is_shown(page: Page, chat: Chat, user: str) -> None:
    sign_in(page, chat, user)
    page.get_by_test_id("new-thread").click()
    expect(page.get_by_test_id("message")).to_have_count(0)

    send(page, MILK)  # the first message starts the thread

    expect(page.locator("[data-testid=message][data-role=user] .text")).to_have_text([MILK])
    expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "live")
    tool = page.get_by_test_id("tool-call")
    expect(tool).to_have_count(1)
    expect(tool).to_have_attribute("data-status", "completed")
    expect(tool).to_contain_text("add_task")
    expect(tool).to_contain_text("buy milk")
    messages = settled(page, chat, user, replies=1)
    assert messages[0] == ("user", MILK)
    assert "Added task #1 “buy milk”." in messages[1][1]
    expect(page.get_by_test_id("thread-item")).to_have_count(1)

    # A reply the page follows from its first words grows on the page as the model writes it.
    # (The first reply of a new thread cannot: its model call starts before the page, which
    # learns the thread's id from the answer that creates it, has its stream open.)
    page.evaluate(WATCH_GROWTH)
    send(page, STREAMED)
    expect(page.get_by_test_id("tool-call")).to_have_count(4)
    messages = settled(page, chat, user, replies=2)
    final = messages[-1][1]
    growth: list[int] = page.evaluate("() => window.growth")
    partial = [n for n in growth if 0 < n < len(final)]
    assert len(set(partial)) >= 2, f"the reply did not grow on the page as it streamed: {growth}"
    assert growth == sorted(growth), f"the reply's text did not only grow: {growth}"
    assert growth[-1] == len(final), growth
    for call in page.get_by_test_id("tool-call").all():
        expect(call).to_have_attribute("data-status", FINAL_TOOL_STATUS)


def test_a_reload_mid_reply_resumes_the_stream(page: Page, chat: Chat, user: str) -> None:
    sign_in(page, chat, user)
    send(page, "hello")
    settled(page, chat, user, replies=1)
    page.evaluate(WATCH_GROWTH)
    send(page, LONG)
    page.wait_for_function("() => window.growth.some((n) => n > 0)", timeout=30_000)
    before = page.locator("[data-testid=message][data-role=assistant] .text").last.text_content()
    thread = thread_id(page)

    page.reload()

    assert thread_id(page) == thread
    expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "live")
    messages = settled(page, chat, user, replies=2)
    assert messages[2] == ("user", LONG)
    assert len(messages) == 4, messages
    reply = messages[3][1]
    assert before, "the reply had no text yet"
    assert reply.startswith(before), (before, reply)
    assert len(reply) > len(before), "the page was reloaded only after the reply was whole"
    for task in ("buy milk", "walk the dog", "call mum"):
        assert task in reply
    expect(page.get_by_test_id("tool-call")).to_have_count(4)
    for call in page.get_by_test_id("tool-call").all():
        expect(call).to_have_attribute("data-status", "completed")


def test_the_inspector_shows_the_claims_their_data_and_decisions(
    page: Page, chat: Chat, user: str
) -> None:
    sign_in(page, chat, user)
    send(page, MILK)
    settled(page, chat, user, replies=1)

    page.get_by_test_id("inspector-tab").click()
    events = chat.get(user, f"/v1/threads/{thread_id(page)}/events?after=-1&limit=500")["events"]
    expect(page.get_by_test_id("event-row")).to_have_count(len(events))
    claims = page.locator('[data-testid=event-row][data-type="LLMCallRequested"]')
    expect(claims).to_have_count(2)  # the call that asked for add_task, the one that answered
    for claim in claims.all():
        cells = claim.locator("td")
        expect(cells.nth(4)).to_have_text("1")  # attempt
        lease = cells.nth(5).locator("time")  # lease until
        expect(lease).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT"))
    expect(page.get_by_role("columnheader", name="Attempt")).to_be_visible()
    expect(page.get_by_role("columnheader", name="Lease until")).to_be_visible()

    first = claims.first
    position = int(first.get_attribute("data-position") or "")
    first.locator("td.type").click()
    data = page.locator("tr.event-detail").first
    expect(data).to_be_visible()
    claim = next(e for e in events if e["position"] == position)
    expect(data).to_contain_text(claim["data"]["step_id"])
    expect(data).to_contain_text('"attempt": 1')

    event_row(page, position).get_by_role("button", name=f"Decision at position {position}").click()
    decision = page.get_by_test_id("decision")
    expect(decision).to_contain_text(f"decision at position {position}")
    expect(decision).not_to_contain_text("Asking")
    answer = chat.get(user, f"/v1/threads/{thread_id(page)}/decision?at={position}")
    expect(decision.locator("p")).to_contain_text(answer["kind"])
    expect(decision.locator("pre")).to_contain_text(f'"step_id": "{answer["step_id"]}"')


def test_forking_at_a_position_opens_a_thread_with_the_history_up_to_there(
    page: Page, chat: Chat, user: str
) -> None:
    sign_in(page, chat, user)
    send(page, MILK)
    first_turn = settled(page, chat, user, replies=1)
    send(page, "list my tasks")
    whole = settled(page, chat, user, replies=2)
    original = thread_id(page)
    detail = chat.get(user, f"/v1/threads/{original}")
    at = detail["messages"][len(first_turn) - 1]["position"]  # the first turn's answer

    page.get_by_test_id("inspector-tab").click()
    event_row(page, at).get_by_test_id("fork").click()

    eventually(lambda: thread_id(page) != original, "the fork opened")
    forked = thread_id(page)
    expect(page.locator("#panel-chat")).to_be_visible()
    expect(page.get_by_test_id("message")).to_have_count(len(first_turn))
    assert transcript(chat, user, forked) == first_turn == whole[: len(first_turn)]
    assert shown(page) == first_turn
    expect(page.get_by_test_id("thread-item")).to_have_count(2)
    expect(page.locator(f'[data-testid=thread-item][data-thread-id="{forked}"]')).to_have_attribute(
        "aria-current", "true"
    )


def test_a_call_that_needs_approval_runs_once_approved(page: Page, chat: Chat, user: str) -> None:
    sign_in(page, chat, user)
    send(page, MILK)
    settled(page, chat, user, replies=1)

    send(page, "delete task 1")
    approve = page.get_by_test_id("approve")
    expect(approve).to_be_visible()
    expect(page.get_by_test_id("reject")).to_be_visible()
    call = page.get_by_test_id("tool-call").last
    expect(call).to_have_attribute("data-status", "awaiting_approval")
    expect(call).to_contain_text("delete_task")
    expect(page.locator(".approval-info")).to_contain_text("delete_task")

    approve.click()

    expect(call).to_have_attribute("data-status", "completed")
    expect(approve).to_have_count(0)
    settled(page, chat, user, replies=2)
    tasks = chat.get(user, f"/v1/threads/{thread_id(page)}")["tool_calls"]
    assert [(c["name"], c["status"]) for c in tasks][-1] == ("delete_task", "completed")


def test_the_chat_fits_a_phone(page: Page, chat: Chat, user: str) -> None:
    page.set_viewport_size({"width": 375, "height": 740})
    sign_in(page, chat, user)

    def fits() -> None:
        width = page.evaluate("() => [document.documentElement.scrollWidth, innerWidth]")
        assert width[0] <= width[1], f"the page scrolls sideways: {width}"

    fits()
    composer = page.get_by_test_id("composer")
    expect(composer).to_be_in_viewport()
    expect(page.get_by_test_id("send")).to_be_in_viewport()
    composer.click()
    composer.press_sequentially(LONG, delay=0)
    composer.press("Enter")  # Enter sends
    expect(composer).to_have_value("")
    settled(page, chat, user, replies=1)
    fits()
    expect(composer).to_be_in_viewport()
    expect(page.get_by_test_id("send")).to_be_in_viewport()
    expect(page.get_by_test_id("send")).to_be_enabled()
    expect(page.get_by_test_id("tool-call")).to_have_count(4)
