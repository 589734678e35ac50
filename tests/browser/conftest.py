"""The web chat in a real browser: headless Chromium over a running local stack.

One stack for the module (its own database on the session's server, the built-in topic,
the offline model streaming a word every 30 ms) and one browser; each test gets a fresh page,
signs in as a user of its own and saves a full-page screenshot to `artifacts/<test>.png`.

Playwright's Python package is a dev dependency; its browser downloads are not used: the
system Chromium is (Debian's `chromium`, which `.ci/run` installs). Without it the tests are
skipped, except in CI, where they must run (see the test module).
"""

from __future__ import annotations

import contextlib
import io
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from messagedb_agent.postgres import embedded
from messagedb_agent.postgres.connect import ensure_installed
from messagedb_agent.settings import Settings
from messagedb_agent.stack import LocalStack, StackOptions

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = shutil.which("chromium")
WORD_DELAY_MS = 30  # slow enough that a reply visibly grows, fast enough for a short module
FUNCTION_ENV = {
    "MODEL_NAME": "offline",
    "GOOGLE_CLOUD_PROJECT": "",
    "OFFLINE_WORD_DELAY_MS": str(WORD_DELAY_MS),
    "LLM_LEASE_SECONDS": "3",
    "TOOL_LEASE_SECONDS": "3",
    "RATE_LIMIT_PER_MINUTE": "600",
    "RATE_LIMIT_BURST": "100",
    "PYTHONPATH": str(ROOT),
}


@dataclass
class Chat:
    """The running stack as the page sees it: where the page is, and tokens for its users."""

    stack: LocalStack
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def ingest(self) -> str:
        return self.stack.urls["ingest"]

    def token(self, user: str) -> str:
        """`user`'s bearer token, minted once."""
        if user not in self.tokens:
            token = self.stack.dev_token(user)
            assert token is not None
            self.tokens[user] = token
        return self.tokens[user]

    def get(self, user: str, path: str) -> Any:
        """An API answer, as JSON, read with `user`'s bearer token."""
        answer = httpx.get(
            self.ingest + path, headers={"Authorization": f"Bearer {self.token(user)}"}, timeout=30
        )
        answer.raise_for_status()
        return answer.json()


@contextlib.contextmanager
def running_chat(server_url: str, settings: Settings) -> Iterator[Chat]:
    """The stack on a database of its own on `server_url` (its relay sweeps every thread of
    the database it uses), both gone when the block ends."""
    name = f"browser_{uuid.uuid4().hex[:12]}"
    embedded.create_database(server_url, name)
    try:
        url = urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
        ensure_installed(url, settings)
        options = StackOptions(
            ingest_port=0,
            relay_port=0,
            step_port=0,
            emulator_port=0,
            local_topic_port=0,
            transport="local",
            relay_interval=1.0,
            database_url=url,
            env=FUNCTION_ENV,
            startup_timeout=60.0,
        )
        with LocalStack(settings, options, out=io.StringIO()) as stack:
            yield Chat(stack)
    finally:
        embedded.drop_database(server_url, name)


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """The system Chromium, headless, driven by Playwright."""
    if CHROMIUM is None:
        raise RuntimeError("no `chromium` on PATH (Debian: apt-get install chromium)")
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def chat(server_url: str, settings: Settings) -> Iterator[Chat]:
    with running_chat(server_url, settings) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if CHROMIUM is None:
        pytest.fail("CI is set but there is no `chromium` on PATH: .ci/run installs it")
    with chromium() as launched:
        yield launched


@pytest.fixture
def user(request: pytest.FixtureRequest) -> str:
    """A user of the test's own, so thread lists and usage never mix across tests."""
    return f"{request.node.name[:40]}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh page (1100×700); a full-page screenshot of how
    it ended, passed or failed, goes to artifacts/<test>.png. Errors of the page's own script
    fail the test."""
    context = browser.new_context(viewport={"width": 1100, "height": 700})
    context.set_default_timeout(20_000)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield opened
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        with contextlib.suppress(Exception):
            opened.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        context.close()
    assert not errors, f"the page's script failed: {errors}"
