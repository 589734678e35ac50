"""The `messagedb-agent` command."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from messagedb_agent.cli.common import ENV_FILE, friendly, load_settings
from messagedb_agent.cli.db import db_app
from messagedb_agent.cli.evaluate import evaluate
from messagedb_agent.cli.help import PlainGroup
from messagedb_agent.cli.models import models_app

app = typer.Typer(
    help="An event-sourced AI agent whose whole memory is a Message DB event log.",
    cls=PlainGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db_app, name="db")
app.add_typer(models_app, name="models")
app.command("eval")(evaluate)


@app.callback()
def _options(
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            help="Read settings from this env file (KEY=value lines) instead of ./.env; "
            "environment variables still win.",
        ),
    ] = None,
) -> None:
    """An event-sourced AI agent whose whole memory is a Message DB event log."""
    ENV_FILE.clear()
    if config is not None:
        from pathlib import Path

        if not Path(config).is_file():
            typer.secho(f"error: --config {config}: no such file", fg=typer.colors.RED, err=True)
            raise typer.Exit(2)
        ENV_FILE.append(config)


# -- the agent ------------------------------------------------------------------------------


class _Session:
    """Settings, store and engine for one command; closed when the command ends."""

    def __init__(self) -> None:
        from messagedb_agent.postgres.connect import database_url, ensure_installed, open_store

        self.settings = load_settings()
        url = database_url(self.settings)
        ensure_installed(url, self.settings)
        self.store = open_store(self.settings, url)

    def engine(self) -> Any:
        from messagedb_agent.runtime import build_engine

        return build_engine(self.settings, self.store)

    def __enter__(self) -> _Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.store.close()


TURN_SPAN = "cli turn"


@contextmanager
def _turn() -> Iterator[str | None]:
    """One user turn as one trace: a root span, current while the user's message is appended
    (its W3C traceparent, yielded, goes into the message's metadata, as ingest's does) and
    while every step runs, so model and tool spans are its children. Spans are flushed at the
    end: the process may exit right after."""
    from opentelemetry.context import Context

    from messagedb_agent.observability.tracing import current_traceparent, flush, span

    try:
        with span(TURN_SPAN, parent=Context()):  # a new trace, whatever context came before
            yield current_traceparent()
    finally:
        flush()


def _converse(session: _Session, appended: Any, *, events: bool, since: int | None = None) -> None:
    """Run THREAD's steps until it needs its user, then print what they added after `since`
    (the position of what the user just appended, unless told otherwise) and what waits."""
    from messagedb_agent.engine.runner import run_until_idle
    from messagedb_agent.observability import semconv
    from messagedb_agent.observability.tracing import annotate
    from messagedb_agent.render import event_line, transcript
    from messagedb_agent.threads.reading import read_thread

    annotate(
        {
            semconv.GEN_AI_CONVERSATION_ID: appended.thread_id,
            "agent.stream_name": appended.stream_name,
        }
    )

    since = appended.position if since is None else since
    before = len(transcript(read_thread(session.store, appended.stream_name, since - 1)))
    run_until_idle(session.engine(), appended.notification, chain=50)
    recorded = read_thread(session.store, appended.stream_name)
    for line in transcript(recorded)[before:]:
        typer.echo(line)
    if events:
        for item in recorded:
            if item.position >= since:
                typer.echo(event_line(item))
    _print_waiting(appended.thread_id, recorded)


def _print_waiting(thread_id: str, recorded: Any) -> None:
    """The calls waiting for the user's approval, each with the commands that decide it."""
    import json

    from messagedb_agent.projections.approvals import project_approvals
    from messagedb_agent.projections.session_state import project_session_state
    from messagedb_agent.render import shorten

    if not project_session_state(recorded).is_open:
        return
    for approval in project_approvals(recorded).pending:
        call = approval.tool_call_id
        arguments = shorten(json.dumps(approval.arguments, ensure_ascii=False), 80)
        until = (
            f", until {approval.expires_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
            if approval.expires_at is not None
            else ""
        )
        typer.secho(
            f"waiting for your approval: {approval.tool_name} {arguments} (call {call}{until})",
            fg=typer.colors.YELLOW,
        )
        typer.echo(f"  approve: messagedb-agent approve {thread_id} {call}")
        typer.echo(f"  reject:  messagedb-agent reject {thread_id} {call} [--reason TEXT]")


_EVENTS = typer.Option("--events", help="Also print the events this turn appended.")


@app.command("start")
@friendly
def start(
    message: Annotated[str, typer.Argument(help="The first message of the new thread.")],
    title: Annotated[str | None, typer.Option(help="A title for the thread.")] = None,
    events: Annotated[bool, _EVENTS] = False,
) -> None:
    """Start a new thread with MESSAGE and run the agent until it answers."""
    from messagedb_agent.threads.commands import start_thread

    with _Session() as session, _turn() as traceparent:
        appended = start_thread(
            session.store,
            owner=session.settings.local.local_user,
            message=message,
            title=title,
            now=datetime.now(UTC),
            max_length=session.settings.threads.max_message_length,
            traceparent=traceparent,
            shards=session.settings.threads.thread_shards,
        )
        typer.secho(f"thread {appended.thread_id}", fg=typer.colors.CYAN, err=True)
        _converse(session, appended, events=events)


@app.command("continue")
@friendly
def continue_(
    thread: Annotated[str, typer.Argument(help="Thread id (or its stream name).")],
    message: Annotated[str, typer.Argument(help="The next user message.")],
    events: Annotated[bool, _EVENTS] = False,
) -> None:
    """Add MESSAGE to THREAD and run the agent until it answers."""
    from messagedb_agent.threads.commands import add_message

    with _Session() as session, _turn() as traceparent:
        appended = add_message(
            session.store,
            thread,
            owner=session.settings.local.local_user,
            message=message,
            now=datetime.now(UTC),
            max_length=session.settings.threads.max_message_length,
            traceparent=traceparent,
        )
        _converse(session, appended, events=events)


_CALL = typer.Argument(
    help="The id of the waiting call, as printed after `waiting for your approval:`."
)
_REASON = typer.Option("--reason", help="Why, in a few words; the agent reads it.")


def _decide(thread: str, call: str, *, approve: bool, reason: str | None, events: bool) -> None:
    """Decide CALL of THREAD as the local user, then run the turn on as `continue` does."""
    from messagedb_agent.threads.approvals import MAX_REASON_LENGTH, decide_approval

    reason = (reason or "").strip() or None
    if reason is not None and len(reason) > MAX_REASON_LENGTH:
        raise ValueError(f"--reason is too long: at most {MAX_REASON_LENGTH} characters")
    if reason is not None and "\x00" in reason:
        raise ValueError("--reason cannot contain a NUL character")
    with _Session() as session, _turn() as traceparent:
        decided = decide_approval(
            session.store,
            thread,
            call,
            owner=session.settings.local.local_user,
            approve=approve,
            reason=reason,
            traceparent=traceparent,
        )
        since = None
        if not decided.created:
            how = "approved" if approve else "declined"
            typer.echo(f"the call {call} was already {how}; nothing more to decide")
            # The turn may have stopped before it ran on (an interrupted command): run it on,
            # and print only what is new.
            since = (session.store.stream_version(decided.stream_name) or 0) + 1
        _converse(session, decided, events=events, since=since)


@app.command("approve")
@friendly
def approve(
    thread: Annotated[str, typer.Argument(help="Thread id (or its stream name).")],
    call: Annotated[str, _CALL],
    reason: Annotated[str | None, _REASON] = None,
    events: Annotated[bool, _EVENTS] = False,
) -> None:
    """Allow the waiting tool call CALL of THREAD to run, then run the agent until it answers.

    A turn stops before a tool that needs your approval (see TOOLS_REQUIRING_APPROVAL; by default delete_task) and prints the thread and the call's id. For example:

        messagedb-agent approve 9d2c6f0e-1b7a-4c55-a8e3-2f4b6d1c0a97 c0

    Approving again changes nothing; a call already declined stays declined.
    """
    _decide(thread, call, approve=True, reason=reason, events=events)


@app.command("reject")
@friendly
def reject(
    thread: Annotated[str, typer.Argument(help="Thread id (or its stream name).")],
    call: Annotated[str, _CALL],
    reason: Annotated[str | None, _REASON] = None,
    events: Annotated[bool, _EVENTS] = False,
) -> None:
    """Decline the waiting tool call CALL of THREAD; the agent is told, and answers.

    The call never runs; the agent reads your reason, if you give one. For example:

        messagedb-agent reject 9d2c6f0e-1b7a-4c55-a8e3-2f4b6d1c0a97 c0 --reason "I still need it"

    Declining again changes nothing; a call already approved stays approved.
    """
    _decide(thread, call, approve=False, reason=reason, events=events)


@app.command("cancel")
@friendly
def cancel(
    thread: Annotated[str, typer.Argument(help="Thread id (or its stream name).")],
    reason: Annotated[str | None, typer.Option(help="Why, for the record.")] = None,
) -> None:
    """Stop the turn THREAD is running, on whichever instance runs it.

    No step of the turn starts after this; a model call or tool already running finishes and
    is recorded, but nothing acts on it, and calls waiting for approval are withdrawn. The
    thread then waits for your next message. For example:

        messagedb-agent cancel 9d2c6f0e-1b7a-4c55-a8e3-2f4b6d1c0a97
    """
    from datetime import UTC, datetime

    from messagedb_agent.threads.commands import cancel_turn

    with _Session() as session:
        cancelled = cancel_turn(
            session.store,
            thread,
            owner=session.settings.local.local_user,
            now=datetime.now(UTC),
            reason=(reason or "").strip() or None,
        )
    if cancelled.appended is None:
        typer.echo(f"nothing is running in {cancelled.thread_id}; nothing to cancel")
    else:
        typer.echo(
            f"cancelled the running turn of {cancelled.thread_id} "
            f"(position {cancelled.appended.position}); it waits for your next message"
        )


@app.command("show")
@friendly
def show(
    thread: Annotated[str, typer.Argument(help="Thread id (or its stream name).")],
    events: Annotated[
        bool, typer.Option("--events", help="Print the raw event stream instead.")
    ] = False,
) -> None:
    """Print a thread as a readable transcript (or, with --events, its raw event stream)."""
    _print_thread(thread, None, events=events)


@app.command("replay")
@friendly
def replay(
    thread: Annotated[str, typer.Argument(help="Thread id (or its stream name).")],
    to: Annotated[int, typer.Option("--to", min=0, help="Last position to include.")],
    events: Annotated[
        bool, typer.Option("--events", help="Print the events up to POSITION too.")
    ] = False,
) -> None:
    """Project THREAD as it stood at --to POSITION: transcript, state and next step."""
    _print_thread(thread, to, events=events, decide=True)


def _print_thread(thread: str, to: int | None, *, events: bool, decide: bool = False) -> None:
    from messagedb_agent.projections.cost import price_table
    from messagedb_agent.projections.next_step import project_next_step
    from messagedb_agent.render import event_line, summary_line, transcript
    from messagedb_agent.threads.commands import resolve_thread
    from messagedb_agent.threads.reading import read_thread

    with _Session() as session:
        thread_id, stream = resolve_thread(session.store, thread, session.settings.local.local_user)
        recorded = read_thread(session.store, stream, to)
        head = recorded[-1].position if recorded else -1
        if to is not None and to > head:
            # Reading past the head returns the whole thread; "as of 999" would mislead.
            raise ValueError(
                f"--to {to} is past the end of {stream}: its head is position {head} "
                f"(choose 0 to {head})"
            )
        typer.secho(
            f"{stream}" + (f" as of position {to}" if to is not None else ""), fg=typer.colors.CYAN
        )
        lines = [event_line(r) for r in recorded] if events else transcript(recorded)
        for line in lines:
            typer.echo(line)
        typer.echo(summary_line(recorded, price_table(session.settings.prices)))
        if to is None:
            _print_waiting(thread_id, recorded)
        if decide:
            step = project_next_step(recorded, datetime.now(UTC))
            typer.echo(
                f"next step: {step.kind.value}" + (f" ({step.reason})" if step.reason else "")
            )


@app.command("list")
@friendly
def list_(
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many threads to show.")] = 20,
) -> None:
    """List your threads, newest activity first."""
    from messagedb_agent.threads.index import list_threads

    with _Session() as session:
        page = list_threads(session.store, session.settings.local.local_user, limit=limit)
        if not page.items:
            typer.echo("no threads yet: start one with `messagedb-agent start MESSAGE`")
            return
        typer.echo(f"{'thread':<36}  {'last activity (UTC)':<19}  {'status':<10} title")
        for item in page.items:
            when = item.last_activity_at.strftime("%Y-%m-%d %H:%M:%S")
            typer.echo(f"{item.thread_id}  {when}  {item.status:<10} {item.title or ''}")


@app.command("fork")
@friendly
def fork(
    thread: Annotated[str, typer.Argument(help="Thread id (or its stream name).")],
    at: Annotated[int, typer.Option("--at", min=0, help="Last position the fork shares.")],
) -> None:
    """Start a new thread that shares THREAD's history up to --at POSITION."""
    from messagedb_agent.threads.commands import fork_thread

    with _Session() as session:
        appended = fork_thread(
            session.store,
            thread,
            owner=session.settings.local.local_user,
            at=at,
            shards=session.settings.threads.thread_shards,
        )
        typer.echo(f"forked {thread} at position {at} into thread {appended.thread_id}")


@app.command("archive")
@friendly
def archive(
    idle_days: Annotated[
        float,
        typer.Option("--idle-days", min=0, help="Archive threads whose last event is older."),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be archived; change nothing.")
    ] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Archive at most this many threads.")
    ] = None,
) -> None:
    """Export idle threads to ARCHIVE_URL, verify each export, then delete its events.

    Only threads waiting for their user or ended are archived; reading an archived thread or sending it a message restores it.
    """
    from messagedb_agent.relay.run import policy_of
    from messagedb_agent.threads.archive import archive_idle, object_store

    def report(outcome: Any) -> None:
        what = {"archived": "archived", "would_archive": "would archive"}.get(outcome.result)
        if what is not None:
            typer.echo(f"{what:<13} {outcome.stream}  {outcome.events} events → {outcome.url}")
        else:
            colour = typer.colors.RED if outcome.result == "failed" else None
            typer.secho(f"{outcome.result:<13} {outcome.stream}  {outcome.reason}", fg=colour)

    with _Session() as session:
        settings = session.settings
        objects = object_store(
            settings.threads.archive_url, settings.local.home, settings.google_cloud_project
        )
        summary = archive_idle(
            session.store,
            objects,
            datetime.now(UTC),
            idle_days,
            limit=limit,
            dry_run=dry_run,
            policy=policy_of(settings),
            progress=report,
        )
        done = summary.count("would_archive" if dry_run else "archived")
        typer.echo(
            f"{'would archive' if dry_run else 'archived'} {done} thread(s) idle for "
            f"{idle_days:g} days; skipped {summary.count('skipped')}, "
            f"failed {summary.count('failed')}"
        )
        if summary.count("failed"):
            raise typer.Exit(1)


@app.command("demo")
@friendly
def demo(
    in_process: Annotated[
        bool,
        typer.Option(
            "--in-process",
            help="Run the engine in this process instead of through the local serverless stack.",
        ),
    ] = False,
    serve: Annotated[
        bool | None,
        typer.Option(
            "--serve/--no-serve",
            help="Keep the stack running after the conversation, for the web chat, until "
            "Ctrl-C. Default: when run at a terminal, outside CI.",
        ),
    ] = None,
) -> None:
    """Run a multi-turn conversation on the local defaults and print it with its events.

    By default it starts the local stack (Message DB, Pub/Sub emulator, ingest/relay/step
    functions) and talks to the ingest API as a chat front-end would; then it prints the web
    chat's URL, and at a terminal keeps serving it until Ctrl-C.
    """
    import os
    import sys

    from messagedb_agent.demo import run_demo, run_http_demo

    settings = load_settings()
    if in_process:
        run_demo(settings, echo=typer.echo)
        return
    if serve is None:
        serve = sys.stdin.isatty() and sys.stdout.isatty() and not os.environ.get("CI")
    run_http_demo(settings, echo=typer.echo, keep_serving=serve)


@app.command("stack")
@friendly
def stack(
    transport: Annotated[
        str, typer.Option(help="auto (emulator when gcloud is installed) | emulator | local")
    ] = "auto",
    relay_interval: Annotated[
        float, typer.Option(help="Seconds between relay runs, as Cloud Scheduler would; 0 = off")
    ] = 5.0,
    host: Annotated[str, typer.Option(help="Address every part listens on.")] = "127.0.0.1",
    ingest_port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port of the ingest function; 0 = any free one.")
    ] = 8080,
    relay_port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port of the relay function; 0 = any free one.")
    ] = 8081,
    step_port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port of the step function; 0 = any free one.")
    ] = 8082,
    emulator_port: Annotated[
        int,
        typer.Option(min=0, max=65535, help="Port of the Pub/Sub emulator; 0 = any free one."),
    ] = 8085,
    topic_port: Annotated[
        int,
        typer.Option(
            min=0,
            max=65535,
            help="Port of the built-in topic (used without the emulator); 0 = any free one.",
        ),
    ] = 8086,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="PostgreSQL to use instead of DATABASE_URL or the embedded server, which "
            "listens on a Unix socket in its data folder, not on a port."
        ),
    ] = None,
) -> None:
    """Run the whole system locally: Message DB, the Pub/Sub emulator, ingest, relay and step.

    The ports in use are printed once everything answers. A part that dies is started again.
    """
    import os

    from messagedb_agent.runtime import Runtime
    from messagedb_agent.stack import StackOptions, run
    from messagedb_agent.stack.stack import LOCAL_WORD_DELAY_MS

    if transport not in ("auto", "emulator", "local"):
        raise ValueError("--transport must be auto, emulator or local")
    settings = load_settings()
    Runtime(settings).import_tool_modules()  # one line naming a broken module, not a traceback
    raise typer.Exit(
        run(
            settings,
            StackOptions(
                host=host,
                ingest_port=ingest_port,
                relay_port=relay_port,
                step_port=step_port,
                emulator_port=emulator_port,
                local_topic_port=topic_port,
                transport=transport,  # type: ignore[arg-type]
                relay_interval=relay_interval,
                database_url=database_url,
                echo=sys.stdout,
                # the offline model streams its replies, so the web chat shows them live
                env={
                    "OFFLINE_WORD_DELAY_MS": os.environ.get(
                        "OFFLINE_WORD_DELAY_MS", str(LOCAL_WORD_DELAY_MS)
                    )
                },
            ),
        )
    )


_TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> int:
    """Seconds in a lifetime written as people write it: `90s`, `30m`, `24h`, `7d` or `3600`."""
    value = text.strip().lower()
    unit = _TTL_UNITS.get(value[-1:])
    number = value[:-1] if unit is not None else value
    if not number.isdigit() or int(number) == 0:
        raise ValueError(f"--ttl {text!r}: write a positive whole number with s, m, h or d")
    return int(number) * (unit or 1)


@app.command("token")
@friendly
def token(
    user: Annotated[str, typer.Option("--user", help="The user the token signs in as.")],
    ttl: Annotated[
        str, typer.Option("--ttl", metavar="DURATION", help="How long it is valid: 30m, 24h, 7d.")
    ] = "24h",
) -> None:
    """Print a development bearer token for the local stack's API as --user.

    It is signed with this checkout's secret, so it survives a restart of the stack. Refused outside local development: on Cloud Run, or where the API trusts a real issuer.
    """
    from messagedb_agent.api.auth import issue_dev_token
    from messagedb_agent.settings.serving import local_signing_secret, local_token_refusal

    settings = load_settings()
    refusal = local_token_refusal(settings.api, settings.k_service)
    if refusal is not None:
        typer.secho(f"error: refusing to mint a token: {refusal}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    seconds = parse_ttl(ttl)
    secret = local_signing_secret(settings.api, settings.local.home)
    typer.echo(issue_dev_token(user, secret, seconds, audience=settings.api.jwt_audience))


@app.command("mcp")
@friendly
def mcp(
    user: Annotated[
        str | None, typer.Option(help="The user the tools act for (default: LOCAL_USER).")
    ] = None,
) -> None:
    """Serve the task tools over MCP on stdio, acting for one user."""
    from messagedb_agent.postgres.connect import database_url, ensure_installed, open_store
    from messagedb_agent.tools.mcp_server import serve_stdio

    settings = load_settings()
    url = database_url(settings)
    ensure_installed(url, settings)
    with open_store(settings, url) as store:
        serve_stdio(user or settings.local.local_user, store)


def main(argv: list[str] | None = None) -> Any:
    import os

    from messagedb_agent.observability import configure

    # warnings and errors on stderr, readable; LOG_LEVEL=INFO or DEBUG says more. The pool's
    # reconnect warnings are left out: a command reports a database failure as one line.
    configure(json=False, level=os.environ.get("LOG_LEVEL", "WARNING"), quiet=["psycopg.pool"])
    return app(args=argv if argv is not None else sys.argv[1:])
