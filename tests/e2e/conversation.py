"""A chat front-end's side of a conversation, and what a correct one looks like afterwards.

The script is the demo's tool chaining with the offline model: two tasks added in one turn,
one completed by name (a lookup, then the change), a listing, a calculation. Every user has
their own task list, so every user's tasks are numbered 1 and 2.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from messagedb_agent.llm.offline import OFFLINE_NOTE

WAIT_SECONDS = 25.0


@dataclass(frozen=True)
class Turn:
    says: str
    reply: str
    tools: tuple[tuple[str, dict[str, Any]], ...]  # (name, arguments) of each call, in order
    model_calls: int  # LLM steps of the turn (calls made together share one)


SCRIPT = (
    Turn(
        "Add a task to buy milk and add a task to walk the dog",
        f"{OFFLINE_NOTE}\nAdded task #1 “buy milk”.\nAdded task #2 “walk the dog”.",
        (("add_task", {"title": "buy milk"}), ("add_task", {"title": "walk the dog"})),
        2,
    ),
    Turn(
        "Mark milk done",
        "Marked task #1 “buy milk” as done.",
        (("list_tasks", {"status": "all"}), ("complete_task", {"task_id": 1})),
        3,
    ),
    Turn(
        "What are my tasks?",
        "Your tasks:\n- [x] #1 buy milk\n- [ ] #2 walk the dog",
        (("list_tasks", {"status": "all"}),),
        2,
    ),
    Turn("What is 12*(3+4)?", "12*(3+4) = 84", (("calculate", {"expression": "12*(3+4)"}),), 2),
)

FAILURES = {"LLMCallFailed", "ToolExecutionFailed", "ErrorOccurred"}


def ok(response: httpx.Response, *statuses: int) -> Any:
    expected = statuses or (200,)
    assert response.status_code in expected, (
        f"{response.request.method} {response.request.url.path}: "
        f"{response.status_code} {response.text[:500]}"
    )
    return response.json()


@dataclass
class Chat:
    """One user's thread, driven over HTTP."""

    http: httpx.Client
    thread_id: str = ""
    replies: list[str] = field(default_factory=list)

    def start(self) -> str:
        self.thread_id = ok(self.http.post("/v1/threads", json={}), 201)["thread_id"]
        return self.thread_id

    def send(self, text: str) -> int:
        """Post without waiting; returns the message's position."""
        answer = ok(
            self.http.post(f"/v1/threads/{self.thread_id}/messages", json={"message": text}), 202
        )
        position: int = answer["position"]
        return position

    def say(self, text: str, wait: float = WAIT_SECONDS) -> str:
        """Post with `?wait=`; if the reply takes longer, read it from the thread once it lands."""
        answer = ok(
            self.http.post(
                f"/v1/threads/{self.thread_id}/messages",
                params={"wait": wait},
                json={"message": text},
            ),
            200,
            202,
        )
        reply = answer.get("reply")
        said = str(reply["text"] if reply else self.reply_after(answer["position"]))
        self.replies.append(said)
        return said

    def reply_after(self, position: int, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.detail()["messages"]:
                if message["role"] == "assistant" and message["position"] > position:
                    return str(message["text"])
            time.sleep(0.2)
        raise AssertionError(f"no reply after position {position} in thread {self.thread_id}")

    def detail(self) -> dict[str, Any]:
        detail: dict[str, Any] = ok(self.http.get(f"/v1/threads/{self.thread_id}"))
        return detail

    def events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        after = -1
        while True:
            page = ok(
                self.http.get(
                    f"/v1/threads/{self.thread_id}/events", params={"after": after, "limit": 500}
                )
            )
            events += page["events"]
            if page["next_after"] is None:
                return events
            after = page["next_after"]

    def run(self, script: tuple[Turn, ...] = SCRIPT) -> Chat:
        if not self.thread_id:
            self.start()
        for turn in script:
            self.say(turn.says)
        return self


@dataclass(frozen=True)
class Audit:
    """Per-step counts read from a thread's events."""

    llm_steps: Counter[str]  # claimed LLM step id -> claims (attempts)
    responses: Counter[str]  # LLM step id -> LLMResponseReceived
    tool_calls: Counter[tuple[str, str]]  # (tool step id, call id) -> claims
    tool_results: Counter[tuple[str, str]]  # (tool step id, call id) -> ToolExecutionCompleted
    types: Counter[str]

    @classmethod
    def of(cls, events: list[dict[str, Any]]) -> Audit:
        def key(e: dict[str, Any]) -> tuple[str, str]:
            return (e["data"]["step_id"], e["data"]["tool_call_id"])

        def of_type(name: str) -> list[dict[str, Any]]:
            return [e for e in events if e["type"] == name]

        return cls(
            Counter(e["data"]["step_id"] for e in of_type("LLMCallRequested")),
            Counter(e["data"]["step_id"] for e in of_type("LLMResponseReceived")),
            Counter(key(e) for e in of_type("ToolExecutionRequested")),
            Counter(key(e) for e in of_type("ToolExecutionCompleted")),
            Counter(e["type"] for e in events),
        )

    def assert_exactly_once(self) -> None:
        """Each claimed step has exactly one result: no step lost, none done twice."""
        assert set(self.responses) == set(self.llm_steps), self
        assert all(n == 1 for n in self.responses.values()), self.responses
        assert set(self.tool_results) == set(self.tool_calls), self
        assert all(n == 1 for n in self.tool_results.values()), self.tool_results
        assert not FAILURES & set(self.types), self.types


def check_transcript(chat: Chat, script: tuple[Turn, ...] = SCRIPT) -> list[dict[str, Any]]:
    """Replies, transcript, tool calls and the event stream of a finished scripted thread."""
    assert chat.replies == [turn.reply for turn in script]
    detail = chat.detail()
    assert [(m["role"], m["text"]) for m in detail["messages"]] == [
        pair for turn in script for pair in (("user", turn.says), ("assistant", turn.reply))
    ]
    calls = detail["tool_calls"]
    assert [(c["name"], c["arguments"]) for c in calls] == [
        call for turn in script for call in turn.tools
    ]
    assert all(c["status"] == "completed" and c["attempts"] == 1 for c in calls), calls
    added = [c["result"]["task"]["id"] for c in calls if c["name"] == "add_task"]
    assert added == list(range(1, len(added) + 1))  # this user's own numbering
    events = chat.events()
    assert [e["position"] for e in events] == list(range(len(events)))
    assert len({e["id"] for e in events}) == len(events)
    audit = Audit.of(events)
    audit.assert_exactly_once()
    assert len(audit.responses) == sum(turn.model_calls for turn in script)
    assert sum(audit.tool_results.values()) == sum(len(turn.tools) for turn in script)
    assert audit.types["UserMessageAdded"] == len(script)
    return events


def turn_starts(events: list[dict[str, Any]]) -> list[int]:
    """Positions of the user messages that started a claim: where a delivery picked a turn up.

    A claim records the head it was read at as its causation; a turn's first claim is caused by
    the user message, which only a notification (ingest's, or the relay's) can have announced.
    """
    said = {e["position"] for e in events if e["type"] == "UserMessageAdded"}
    return sorted(
        {
            e["metadata"]["causation_position"]
            for e in events
            if e["type"] in {"LLMCallRequested", "ToolExecutionRequested"}
            and e["metadata"]["causation_position"] in said
        }
    )


def sse_messages(
    http: httpx.Client, path: str, last_id: str | None = None
) -> Iterator[tuple[str | None, dict[str, Any]]]:
    """A live stream's SSE messages (id, data) as they arrive; heartbeats carry no id."""
    headers = {"Last-Event-ID": last_id} if last_id is not None else {}
    with http.stream("GET", path, headers=headers, timeout=60) as response:
        assert response.status_code == 200, response.read()
        sse_id: str | None = None
        for line in response.iter_lines():
            if line.startswith("id: "):
                sse_id = line[4:]
            elif line.startswith("data: "):
                yield sse_id, orjson.loads(line[6:])
            elif line == "":
                sse_id = None
