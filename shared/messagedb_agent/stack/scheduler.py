"""Cloud Scheduler's part, locally: call the relay function's URL every few seconds."""

from __future__ import annotations

import logging
import threading

import httpx

from messagedb_agent.stack.processes import FUNCTION_CLIENT_LIMITS

log = logging.getLogger(__name__)


class RelayTrigger:
    def __init__(self, url: str, interval: float, *, timeout: float = 60.0) -> None:
        self.url = url
        self.interval = interval
        self.timeout = timeout
        self.runs = 0
        self.failures = 0
        self.last: dict[str, object] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="relay-trigger", daemon=True)

    def start(self) -> RelayTrigger:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.timeout)

    def _loop(self) -> None:
        with httpx.Client(timeout=self.timeout, limits=FUNCTION_CLIENT_LIMITS) as client:
            while not self._stop.wait(self.interval):
                try:
                    response = client.post(self.url)
                    response.raise_for_status()
                    self.last = response.json()
                    self.runs += 1
                except (httpx.HTTPError, ValueError) as exc:
                    self.failures += 1
                    log.warning("relay trigger: %s did not run: %s", self.url, exc)
