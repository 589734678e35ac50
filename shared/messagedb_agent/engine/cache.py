"""Warm instances keep the threads they drove: the next turn reads only what is new.

Message DB streams are append-only, so a view folded up to position P stays true forever; the
next invocation reads from P + 1 and folds the tail (Eventide's entity cache, in memory). A
view is taken out while a worker drives it and put back only when the worker finishes
cleanly, so a crash mid-step can never leave a half-written view behind, and two workers in
one process never share one. Bounded by the events held, least recently used first out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from messagedb_agent.engine.view import ThreadView


class ViewCache:
    def __init__(self, max_events: int = 50_000) -> None:
        self.max_events = max_events
        self._views: OrderedDict[str, ThreadView] = OrderedDict()
        self._events = 0
        self._lock = threading.Lock()

    def take(self, stream: str) -> ThreadView | None:
        with self._lock:
            view = self._views.pop(stream, None)
            if view is not None:
                self._events -= view.size
            return view

    def put(self, view: ThreadView) -> None:
        size = view.size
        if size > self.max_events:
            return
        with self._lock:
            old = self._views.pop(view.stream_name, None)
            if old is not None:
                self._events -= old.size
            self._views[view.stream_name] = view
            self._events += size
            while self._events > self.max_events:
                _, evicted = self._views.popitem(last=False)
                self._events -= evicted.size

    def __len__(self) -> int:
        return len(self._views)
