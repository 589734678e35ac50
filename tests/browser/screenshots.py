"""The README's pictures of the web chat, taken from a fresh local stack:

    .venv/bin/python -m tests.browser.screenshots [OUT_DIR]   (default: docs/images)

writes `chat.png` (a conversation with tool calls) and `inspector.png` (the same thread's
events, a model call's claim opened), at 1100×700. Needs `chromium` on PATH and
the PostgreSQL the tests use (`MESSAGEDB_TEST_URL`, else the embedded server). When `pngquant`
is installed the images are quantised with it (a third of the size); otherwise they are kept
as Chromium wrote them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import Page, ViewportSize, expect
from tests.browser.chat_page import event_row, send, settled, sign_in, thread_id
from tests.browser.conftest import Chat, chromium, running_chat
from tests.conftest import ROOT, TEST_HOME

from messagedb_agent.postgres import embedded
from messagedb_agent.settings import Settings

USER = "ada"
VIEWPORT: ViewportSize = {"width": 1100, "height": 700}


def converse(page: Page, chat: Chat) -> None:
    sign_in(page, chat, USER)
    send(page, "add a task to buy milk")
    settled(page, chat, USER, replies=1)
    send(page, "add a task to walk the dog and add a task to call mum, then list my tasks")
    settled(page, chat, USER, replies=2)
    page.evaluate("() => document.activeElement?.blur()")


def inspect(page: Page, chat: Chat) -> None:
    page.get_by_test_id("inspector-tab").click()
    events = chat.get(USER, f"/v1/threads/{thread_id(page)}/events?after=-1&limit=500")["events"]
    expect(page.get_by_test_id("event-row")).to_have_count(len(events))
    claim = next(e for e in events if e["type"] == "LLMCallRequested" and e["position"] > 1)
    event_row(page, claim["position"]).locator("td.type").click()  # its data and metadata
    expect(page.locator("tr.event-detail")).to_contain_text(claim["data"]["step_id"])
    page.evaluate("() => document.activeElement?.blur()")
    page.locator(".snapshot").evaluate("(el) => el.scrollIntoView({ block: 'start' })")


def shrink(path: Path) -> None:
    pngquant = shutil.which("pngquant")
    if pngquant is None:
        return
    subprocess.run(
        [pngquant, "--force", "--skip-if-larger", "--strip", "--output", str(path), str(path)],
        check=False,
    )


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    settings = Settings(messagedb_agent_home=TEST_HOME, database_url=None)
    server = os.environ.get("MESSAGEDB_TEST_URL") or embedded.start(TEST_HOME, "postgres")
    with running_chat(server, settings) as chat, chromium() as browser:
        context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
        page = context.new_page()
        for name, steps in (("chat", converse), ("inspector", inspect)):
            steps(page, chat)
            path = out / f"{name}.png"
            page.screenshot(path=str(path))
            shrink(path)
            print(f"{path}: {path.stat().st_size // 1024} KB")
        context.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "images")
