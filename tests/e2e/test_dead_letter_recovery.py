"""Every notification of a thread is dead-lettered, and the thread still gets its answer.

The step function is down (killed, and kept down: the stack's supervisor starts a stand-in
that answers every push 503 in its place) for longer than Pub/Sub's retry window, so every push
of the user's message, the ingest's and the relay's alike, fails five times and moves to the
dead-letter topic (the relay is held down meanwhile, so that the set of pushes is fixed). Nobody replays the dead letters. Once the step function is back, the relay,
which re-announces every head that still needs a step until it moves, brings the thread on:
the dead-letter topic is informational.

The test has a stack of its own: on the directory's shared stack, other tests' failing pushes
and the emulator's backoff of the whole subscription held the dead-lettering back past any
reasonable wait in some full runs, though never when run alone.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest
from tests.e2e.conftest import Live, Tap, _run_all, start_live
from tests.e2e.conversation import Chat

from messagedb_agent.postgres import embedded
from messagedb_agent.postgres.connect import ensure_installed
from messagedb_agent.settings import Settings
from messagedb_agent.stack.emulator import MAX_DELIVERY_ATTEMPTS
from messagedb_agent.stack.processes import Service, http_answers, wait_until
from messagedb_agent.store import stream_name as names

QUESTION = "What is 12*(3+4)?"
ANSWER = "12*(3+4) = 84"
# What stands in for the step function while it is down: it answers every push 503, as Cloud
# Run does for a service that cannot serve, so Pub/Sub counts each delivery attempt as failed.
UNAVAILABLE = """
import http.server, sys
class Down(http.server.BaseHTTPRequestHandler):
    def _refuse(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()
    do_GET = do_POST = _refuse
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), Down).serve_forever()
"""


@pytest.fixture(scope="module")
def own_live(server_url: str, settings: Settings) -> Iterator[Live]:
    name = f"e2e_dead_{uuid.uuid4().hex[:10]}"
    embedded.create_database(server_url, name)
    url = urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    ensure_installed(url, settings)
    shutdown: list[Callable[[], None]] = []
    try:
        yield start_live(settings, url, shutdown)
    finally:
        _run_all(shutdown)
        embedded.drop_database(server_url, name)


def dead_letters(live: Live) -> Tap:
    """The stack's dead-letter subscription, read as Pub/Sub keeps it."""
    assert live.stack.emulator_host is not None
    assert live.stack.topology is not None
    return Tap(live.stack.emulator_host, live.stack.topology.dead_letter_subscription)


def _kill(service: Service) -> None:
    process = service.process
    assert process is not None
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


@contextmanager
def function_down(live: Live, name: str) -> Iterator[None]:
    """Kill function `name` and keep it down (a stand-in answers 503) until the block ends."""
    service = live.service(name)
    argv = service.argv
    url = live.stack.urls[name] + "/"
    address = urlsplit(url)
    service.argv = [sys.executable, "-c", UNAVAILABLE, str(address.hostname), str(address.port)]
    try:
        dead_pid = service.pid
        _kill(service)
        wait_until(
            lambda: service.running and service.pid != dead_pid and http_answers(url),
            f"the {name} stand-in",
            timeout=30,
        )
        yield
    finally:
        service.argv = argv
        if service.running:
            _kill(service)  # the stand-in: the supervisor starts the real function again
        wait_until(
            lambda: service.running and http_answers(url), f"the {name} function", timeout=60
        )


def _eventually(check: Callable[[], bool], what: str | Callable[[], str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what() if callable(what) else what
        time.sleep(0.5)


def _within(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)
    return True


def _emulator_said(live: Live) -> str:
    return "\n".join(live.service("pubsub-emulator").tail)


def test_a_thread_whose_notifications_were_all_dead_lettered_is_answered_once_step_is_back(
    own_live: Live,
) -> None:
    live = own_live
    dead = dead_letters(live)
    try:
        with live.client(f"dead-letter-{uuid.uuid4().hex[:6]}") as http:
            chat = Chat(http)
            chat.start()
            stream = names.thread_stream(chat.thread_id)
            # The new thread's own announcements are delivered first: the emulator slows a
            # subscription whose pushes keep failing, and more than two failing at once
            # would hold back the dead-lettering this test waits for.
            time.sleep(2)
            dead.drain()
            with function_down(live, "step"):
                position = chat.send(QUESTION)
                # Ingest announced the message, and the relay's pass over it announces it once
                # more: both pushes fail. Then the relay stops too, so that what Pub/Sub carries
                # for the thread is a fixed set, and waits until all of it is dead-lettered.
                _eventually(
                    lambda: live.tap.counts(stream)[position] >= 2,
                    "the relay did not announce the message",
                    timeout=30,
                )
                with function_down(live, "relay"):
                    announced = live.tap.counts(stream)[position]
                    if not _within(lambda: dead.counts(stream)[position] >= announced, 90):
                        # Seen in some runs: the emulator pushes the failing notifications again
                        # every few seconds, for minutes, and never dead-letters them (the
                        # policy's five attempts and its backoff are not applied), though never
                        # when the test runs alone. Without dead letters the scenario cannot be
                        # set up, so the run says so instead of passing or failing on it.
                        pytest.skip(
                            f"the Pub/Sub emulator did not dead-letter the {announced} "
                            f"notifications in 90 s ({dead.counts(stream)[position]} were); "
                            "its last lines:\n" + _emulator_said(live)[-2000:]
                        )
                    before = live.tap.counts(stream)[position]
                assert MAX_DELIVERY_ATTEMPTS >= 5  # Pub/Sub's own minimum: a real retry window
                assert [m["role"] for m in chat.detail()["messages"]] == ["user"]

            # Nothing is left for Pub/Sub to deliver; the relay has passed the message, so only
            # its rule for heads that still need a step can bring the thread on.
            reply = chat.reply_after(position, timeout=90)

        assert reply.endswith(ANSWER)  # after the offline model's first-turn note
        # Only the relay publishes a head that is already announced: it did so again.
        assert live.tap.counts(stream)[position] > before
    finally:
        dead.close()
