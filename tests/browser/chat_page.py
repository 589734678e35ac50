"""The web chat's page as the tests (and the README's screenshots) drive it: a person's
steps (sign in, send) and what the page shows, beside what the API says."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from playwright.sync_api import Locator, Page, expect
from tests.browser.conftest import Chat

# Every length the newest assistant bubble's text had, from now on, however fast it changed:
# what the person in front of the page saw. Bubbles already there are not watched.
WATCH_GROWTH = """() => {
  const box = document.getElementById('conversation');
  const before = new Set(box.querySelectorAll('[data-testid=message][data-role=assistant]'));
  window.growth = [];
  const note = () => {
    const all = box.querySelectorAll('[data-testid=message][data-role=assistant]');
    const last = all[all.length - 1];
    if (!last || before.has(last)) return;
    const length = last.querySelector('.text').textContent.length;
    if (window.growth[window.growth.length - 1] !== length) window.growth.push(length);
  };
  window.growthWatch?.disconnect();
  window.growthWatch = new MutationObserver(note);
  window.growthWatch.observe(box, { childList: true, subtree: true, characterData: true });
}"""


# -- helpers -----------------------------------------------------------------------------------


def sign_in(page: Page, chat: Chat, user: str) -> None:
    """Opens the page with a sign-in link (the token in its fragment) and signs in."""
    token = chat.token(user)
    page.goto(f"{chat.ingest}/ui/#token={token}")
    expect(page.get_by_test_id("token")).to_have_value(token)
    assert "token=" not in page.url  # the page takes the token out of the address bar
    page.get_by_test_id("sign-in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    expect(page.get_by_test_id("composer")).to_be_editable()


def send(page: Page, text: str) -> None:
    page.get_by_test_id("composer").fill(text)
    page.get_by_test_id("send").click()
    expect(page.get_by_test_id("composer")).to_have_value("")


def thread_id(page: Page) -> str:
    fragment: str = page.evaluate("() => location.hash.slice(1)")
    return parse_qs(fragment)["thread"][0]


def shown(page: Page) -> list[tuple[str, str]]:
    """The conversation as the page shows it: (role, text) of each message bubble."""
    pairs: list[list[str]] = page.evaluate(
        """() => [...document.querySelectorAll('[data-testid=message]')]
             .map((el) => [el.dataset.role, el.querySelector('.text').textContent])"""
    )
    return [(role, text) for role, text in pairs]


def transcript(chat: Chat, user: str, thread: str) -> list[tuple[str, str]]:
    detail = chat.get(user, f"/v1/threads/{thread}?limit=500")
    return [(m["role"], m["text"]) for m in detail["messages"]]


def eventually(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """`check()` until it returns something truthy (then that), for at most `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        answer = check()
        if answer or time.monotonic() > deadline:
            assert answer, f"{what}: still not so after {timeout:g}s"
            return answer
        time.sleep(0.1)


def settled(page: Page, chat: Chat, user: str, *, replies: int) -> list[tuple[str, str]]:
    """Waits for the page to show exactly the thread's transcript, with `replies` assistant
    messages, and for the run to end (nothing to cancel); returns that transcript."""
    thread = thread_id(page)
    last: dict[str, Any] = {}

    def same() -> bool:
        last["page"], last["api"] = shown(page), transcript(chat, user, thread)
        answers = [m for m in last["api"] if m[0] == "assistant"]
        return len(answers) == replies and last["page"] == last["api"]

    try:
        eventually(same, "the page shows the thread's transcript")
    except AssertionError:
        raise AssertionError(f"page: {last['page']}\napi:  {last['api']}") from None
    expect(page.get_by_test_id("cancel")).to_be_hidden()
    messages: list[tuple[str, str]] = last["api"]
    return messages


def event_row(page: Page, position: int) -> Locator:
    return page.locator(f'[data-testid=event-row][data-position="{position}"]')
