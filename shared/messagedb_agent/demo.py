"""The main job on the embedded defaults: a real multi-turn conversation, printed.

Embedded PostgreSQL, the real Message DB, the offline stand-in model (or Vertex AI when
configured) and the task tools: every turn runs through the same step protocol as in the
cloud, and the tasks it creates live in the user's task stream, so the next run finds them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from messagedb_agent.engine.runner import run_until_idle
from messagedb_agent.events import from_message
from messagedb_agent.postgres.connect import database_url, ensure_installed, open_store
from messagedb_agent.projections.approvals import project_approvals
from messagedb_agent.projections.cost import price_table
from messagedb_agent.render import counted, event_line, shorten, summary_line, transcript
from messagedb_agent.runtime import build_engine
from messagedb_agent.settings import Settings
from messagedb_agent.store import stream_name as names
from messagedb_agent.store.diagnosis import redact
from messagedb_agent.store.message import MessageData
from messagedb_agent.threads.approvals import decide_approval
from messagedb_agent.threads.commands import add_message, start_thread
from messagedb_agent.threads.reading import read_thread

DEMO_TURNS = (
    "What are my tasks?",
    "Add a task to buy milk and add a task to walk the dog",
    "Mark milk done",
    "What time is it and what is 12*(3+4)?",
    "Delete the completed tasks",
    "Show my pending tasks",
)

Echo = Callable[[str], None]


def run_demo(settings: Settings, echo: Echo = print, turns: tuple[str, ...] = DEMO_TURNS) -> str:
    """Run the conversation; returns the thread id."""
    url = database_url(settings)
    report = ensure_installed(url, settings)
    model = settings.effective_model
    echo(f"database  {redact(url)} ({report.summary()})")
    label = (
        "offline stand-in (set GOOGLE_CLOUD_PROJECT to use Vertex AI)"
        if model == "offline"
        else f"{model} on Vertex AI"
    )
    echo(f"model     {label}")
    echo(f"user      {settings.local.local_user}\n")
    with open_store(settings, url) as store:
        engine = build_engine(settings, store)
        now = datetime.now(UTC)
        thread = start_thread(
            store,
            owner=settings.local.local_user,
            message=turns[0],
            now=now,
            shards=settings.threads.thread_shards,
        )
        echo(f"thread    {thread.thread_id}\n")
        shown = 0
        notification = thread.notification
        for index, text in enumerate(turns):
            if index:
                notification = add_message(
                    store,
                    thread.thread_id,
                    owner=settings.local.local_user,
                    message=text,
                    now=datetime.now(UTC),
                ).notification
            run_until_idle(engine, notification, chain=50)
            while pending := project_approvals(read_thread(store, thread.stream_name)).pending:
                for approval in pending:  # the demo's user approves what the agent asks
                    echo(f"approval  ? {approval.tool_name}{_arguments(approval.arguments)}")
                    echo(
                        f"            approved (messagedb-agent approve {thread.thread_id} "
                        f"{approval.tool_call_id})"
                    )
                    decided = decide_approval(
                        store,
                        thread.thread_id,
                        approval.tool_call_id,
                        owner=settings.local.local_user,
                        approve=True,
                    )
                run_until_idle(engine, decided.notification, chain=50)
            lines = transcript(read_thread(store, thread.stream_name))
            for line in lines[shown:]:
                echo(line)
            shown = len(lines)
            echo("")
        events = read_thread(store, thread.stream_name)
        echo(f"event stream {thread.stream_name}:")
        for recorded in events:
            echo(event_line(recorded))
        echo(f"\n{summary_line(events, price_table(settings.prices))}")
        echo(
            "\nEverything above is in Message DB. Run it again: the first answer lists the tasks "
            "this run saved.\nInspect it with `messagedb-agent show "
            f"{thread.thread_id} --events`."
        )
        return thread.thread_id


def run_http_demo(
    settings: Settings,
    echo: Echo = print,
    turns: tuple[str, ...] = DEMO_TURNS,
    keep_serving: bool = False,
) -> str:
    """The same conversation as a chat front-end has it: through the local serverless stack.

    Starts the stack (Message DB, the Pub/Sub emulator or the built-in topic, and the ingest,
    relay and step functions under functions-framework), then posts each message to the ingest
    API with `?wait=` and prints the replies, the tool calls and the thread's event stream.
    """
    import httpx

    from messagedb_agent.stack import StackOptions
    from messagedb_agent.stack.stack import LOCAL_WORD_DELAY_MS, LocalStack

    # served for a person afterwards: the offline model streams, so the chat shows it live
    paced = {"OFFLINE_WORD_DELAY_MS": str(LOCAL_WORD_DELAY_MS)} if keep_serving else {}
    options = StackOptions.on_free_ports(relay_interval=2.0, env=paced)
    echo("starting the local stack (Message DB, Pub/Sub, ingest/relay/step functions)…")
    with LocalStack(settings, options, out=_Quiet(echo)) as stack:  # type: ignore[arg-type]
        ingest = stack.urls["ingest"]
        token = stack.dev_token(settings.local.local_user)
        transport = (
            "Pub/Sub emulator" if stack.transport == "emulator" else "BUILT-IN topic (no gcloud)"
        )
        echo(f"ingest    {ingest}\npubsub    {transport}\nmodel     {settings.effective_model}\n")
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=ingest, headers=headers, timeout=60) as http:
            created = _ok(http.post("/v1/threads", json={}))
            thread_id = created["thread_id"]
            echo(f"POST /v1/threads → thread {thread_id}\n")
            shown_calls: set[str] = set()
            for text in turns:
                echo(f"you       › {text}")
                answer = _ok(
                    http.post(
                        f"/v1/threads/{thread_id}/messages",
                        params={"wait": 20},
                        json={"message": text},
                    )
                )
                thread = _ok(http.get(f"/v1/threads/{thread_id}"))
                while thread["pending_approvals"]:  # the demo's user approves what it asks
                    for approval in thread["pending_approvals"]:
                        call_id = approval["tool_call_id"]
                        echo(f"approval  ? {approval['tool']}{_arguments(approval['arguments'])}")
                        echo(f"            POST /v1/threads/{thread_id}/approvals/{call_id}")
                        _ok(
                            http.post(
                                f"/v1/threads/{thread_id}/approvals/{call_id}",
                                json={"decision": "approve"},
                            )
                        )
                    answer = _await_reply(http, thread_id, answer)
                    thread = _ok(http.get(f"/v1/threads/{thread_id}"))
                for call in thread["tool_calls"]:
                    if call["id"] in shown_calls:
                        continue
                    shown_calls.add(call["id"])
                    outcome = call["result"] if call["status"] == "completed" else call["error"]
                    args = ", ".join(f"{k}={v!r}" for k, v in call["arguments"].items())
                    echo(f"   tool   ⚙ {call['name']}({args}) → {shorten(outcome)}")
                reply = answer.get("reply")
                if reply is None:
                    echo("assistant … (still working; the reply will be in the thread)")
                    continue
                first, *rest = reply["text"].splitlines() or [""]
                echo(f"assistant › {first}")
                for line in rest:
                    echo(f"            {line}")
                echo("")
            events: list[dict[str, Any]] = _ok(
                http.get(f"/v1/threads/{thread_id}/events", params={"limit": 500})
            )["events"]
            echo(f"GET /v1/threads/{thread_id}/events:")
            for event in events:
                echo(event_line(from_message(_as_message(thread_id, event))))
            state = _ok(http.get(f"/v1/threads/{thread_id}"))
            counts, usage = state["counts"], state["token_usage"]
            echo(
                f"\nstatus {state['status']} · {counts['user']} user / "
                f"{counted(counts['assistant'], 'assistant message')} · "
                f"{counted(counts['tool_calls'], 'tool call')} · "
                f"{counted(counts['llm_calls'], 'model call')} · "
                f"{counted(usage['total_tokens'], 'token')} · {counted(len(events), 'event')}"
            )
        chat = f"{ingest}/ui/#token={token}&thread={thread_id}"
        if keep_serving:
            echo(
                f"\nweb chat  {chat}\n          open it to chat and watch replies stream; Ctrl-C stops"
            )
            with contextlib.suppress(KeyboardInterrupt):
                threading.Event().wait()
        else:
            echo(f"\nweb chat  {chat}\n          (served while the stack runs: `make stack`)")
        echo(
            "\nstopping the local stack. Run it again: the first answer lists the tasks this run saved."
        )
        return str(thread_id)


def _arguments(arguments: dict[str, Any]) -> str:
    return "(" + ", ".join(f"{k}={v!r}" for k, v in arguments.items()) + ")"


def _as_message(thread_id: str, event: dict[str, Any]) -> MessageData:
    return MessageData(
        event["id"],
        names.thread_stream(thread_id),
        event["type"],
        event["position"],
        -1,
        event["data"],
        event["metadata"],
        datetime.fromisoformat(event["time"]),
    )


def _await_reply(http: Any, thread_id: str, answer: dict[str, Any]) -> dict[str, Any]:
    """After approving, the turn goes on: its reply is the thread's next assistant message."""
    import time

    for _ in range(200):
        thread = _ok(http.get(f"/v1/threads/{thread_id}", params={"order": "newest", "limit": 1}))
        if thread["pending_approvals"]:
            return answer
        newest = thread["messages"][0] if thread["messages"] else None
        if newest is not None and newest["role"] == "assistant":
            return {"reply": {"text": newest["text"], "position": newest["position"]}}
        time.sleep(0.1)
    return {"reply": None}


def _ok(response: object) -> Any:
    import httpx

    assert isinstance(response, httpx.Response)
    if response.status_code >= 400:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path} answered {response.status_code}: {response.text}"
        )
    return response.json()


class _Quiet:
    """Swallows the stack's banner; the demo prints its own lines."""

    def __init__(self, echo: Echo) -> None:
        self.echo = echo

    def write(self, text: str) -> int:
        if text.startswith("!!"):
            self.echo(text.rstrip())
        return len(text)

    def flush(self) -> None:
        return None
