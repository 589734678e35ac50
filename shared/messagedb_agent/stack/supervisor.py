"""What the platform does for a crashed instance, done for the local stack's children.

Cloud Run starts a new instance when one dies and Cloud SQL restarts its server; the functions
are written for that (claims with leases, Pub/Sub redelivery, the relay). So a local stack that
stopped whenever one child died would test less than the cloud gives. Each watched part is
checked a few times a second; one that has stopped is said to have stopped, started again
after a delay, and said to be back once it answers. The delay doubles while the part keeps
dying soon after each start (a function that fails at import) and starts over once it has
stayed up for a while.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

FIRST_DELAY_SECONDS = 0.5
MAX_DELAY_SECONDS = 30.0
STABLE_AFTER_SECONDS = 30.0  # up this long: the next death starts the delays over
INTERVAL_SECONDS = 0.25


@dataclass
class Watched:
    """One part of the stack, as the supervisor sees it.

    `restart` starts it again and may block until it is up (the database) or return at once
    (a function, then polled with `ready`); `why` says how it stopped; `after_ready` redoes
    what its start-up did beyond starting it (the emulator's topics and subscriptions).
    """

    name: str
    alive: Callable[[], bool]
    restart: Callable[[], object]
    ready: Callable[[], bool] = lambda: True
    why: Callable[[], str] = lambda: "it stopped"
    after_ready: Callable[[], None] | None = None


class _State(Enum):
    UP = "up"
    DOWN = "down"  # waiting out the delay
    STARTING = "starting"  # started again, not answering yet


@dataclass
class _Tracked:
    part: Watched
    state: _State = _State.UP
    started_at: float = 0.0
    down_since: float = 0.0
    restart_at: float = 0.0
    failures: int = 0  # deaths in a row, each soon after a start
    restarts: int = 0


@dataclass
class Supervisor:
    say: Callable[[str], None]
    first_delay: float = FIRST_DELAY_SECONDS
    max_delay: float = MAX_DELAY_SECONDS
    stable_after: float = STABLE_AFTER_SECONDS
    interval: float = INTERVAL_SECONDS
    clock: Callable[[], float] = time.monotonic
    _parts: list[_Tracked] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def watch(self, part: Watched) -> None:
        with self._lock:
            self._parts.append(_Tracked(part, started_at=self.clock()))

    def restarts(self, name: str) -> int:
        """How many times the part was started again."""
        return sum(t.restarts for t in self._parts if t.part.name == name)

    def start(self) -> Supervisor:
        self._thread = threading.Thread(target=self._loop, name="stack-supervisor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching, and wait for a restart under way to finish (it is stopped after)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()

    def tick(self) -> None:
        """One look at every part; what the loop does a few times a second."""
        with self._lock:
            parts = list(self._parts)
        for tracked in parts:
            if self._stop.is_set():
                return
            self._check(tracked, self.clock())

    def _check(self, tracked: _Tracked, now: float) -> None:
        part = tracked.part
        if tracked.state is _State.DOWN:
            if now >= tracked.restart_at:
                self._restart(tracked, now)
            return
        if not _safely(part.alive):
            self._stopped(tracked, now)
            return
        if tracked.state is _State.STARTING and _safely(part.ready):
            if part.after_ready is not None:
                try:
                    part.after_ready()
                except Exception as exc:
                    self.say(f"!! {part.name} is back but could not be set up again: {exc}")
            tracked.state = _State.UP
            self.say(
                f"{part.name} is back (restart {tracked.restarts}, "
                f"{now - tracked.down_since:.1f}s after it stopped)"
            )

    def _stopped(self, tracked: _Tracked, now: float) -> None:
        part = tracked.part
        soon = tracked.state is _State.STARTING or now - tracked.started_at < self.stable_after
        tracked.failures = tracked.failures + 1 if soon else 1
        delay = self._delay(tracked)
        if tracked.state is _State.UP:
            tracked.down_since = now
        tracked.state = _State.DOWN
        tracked.restart_at = now + delay
        self.say(
            f"!! {part.name} stopped unexpectedly ({_safely_text(part.why)}); "
            f"restarting it in {delay:g}s"
        )

    def _restart(self, tracked: _Tracked, now: float) -> None:
        part = tracked.part
        tracked.restarts += 1
        try:
            part.restart()
        except Exception as exc:
            tracked.failures += 1
            delay = self._delay(tracked)
            tracked.restart_at = self.clock() + delay
            self.say(f"!! {part.name} could not be started again ({exc}); next try in {delay:g}s")
            return
        tracked.state = _State.STARTING
        tracked.started_at = now

    def _delay(self, tracked: _Tracked) -> float:
        return float(min(self.max_delay, self.first_delay * 2 ** max(0, tracked.failures - 1)))


def _safely(check: Callable[[], bool]) -> bool:
    """A check that raises counts as "no": the part is not (yet) alive or ready."""
    with contextlib.suppress(Exception):
        return check()
    return False


def _safely_text(describe: Callable[[], str]) -> str:
    with contextlib.suppress(Exception):
        return describe()
    return "it stopped"
